"""The corpus: the GPT-2 tokenizer (ranks shipped in assets/), parquet reading, prepare (tokenize, split,
cache), the prepared files, exact token counts, training and evaluation batches, the demo corpus.
Imports observe/ and the top of trainer/ only.
"""
