"""The engine, headless (no UI imports), grouped in rooms: observe/, data/, model/, train/, plan/, runs/
(bottom to top; each imports only those below it), with config.py, nanogpt_config.py and errors.py at the
top, which every room may import. docs/ARCHITECTURE.md draws the house."""

import os as _os

# The CUDA caching allocator reads its settings once, when it first allocates: set them here, on the
# engine's first import, before any CUDA tensor exists. Expandable segments grow one mapping instead of
# carving fixed blocks, so a run whose shapes change (evaluation, a smaller micro-batch after
# out-of-memory, sampling) fragments less (torch's documentation: CUDA memory management). A user's own
# setting, under either of torch's names, is left as it is.
if not (_os.environ.get("PYTORCH_CUDA_ALLOC_CONF") or _os.environ.get("PYTORCH_ALLOC_CONF")):
    _os.environ["PYTORCH_CUDA_ALLOC_CONF"] = "expandable_segments:True"
