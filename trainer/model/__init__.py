"""The network: the GPT (nanoGPT-compatible, with a KV cache for sampling), sampling text from it, the
formulas of its size and cost (parameters, FLOPs per token) and the precision it computes in.
Imports data/, observe/ and the top of trainer/.
"""
