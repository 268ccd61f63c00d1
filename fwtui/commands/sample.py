"""`fwtui sample RUN|CKPT --prompt TEXT`: text from a run's checkpoint or a nanoGPT ckpt.pt.

Each sample (prompt and continuation) goes to stdout followed by a rule of dashes, as nanoGPT's
sample.py prints them; what was loaded goes to stderr, so stdout holds only text.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainer.errors import CheckpointError, ConfigError
from trainer.model.sampling_options import check_sampling

RULE = "-" * 40


def _prompt_text(prompt: str) -> str:
    """nanoGPT's convention: `FILE:prompt.txt` reads the prompt from a file."""
    if not prompt.startswith("FILE:"):
        return prompt
    path = Path(prompt[len("FILE:"):]).expanduser()
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"--prompt FILE:{path}: cannot read it ({err.strerror}); "
                          f"give an existing text file or the prompt itself") from None


def _check(args: argparse.Namespace) -> None:
    """The parser's types check each flag from the command line; this checks a Namespace made in code too."""
    if args.num_samples < 1:
        raise ConfigError(f"--num-samples {args.num_samples}: must be 1 or more")
    check_sampling(args.max_new_tokens, args.temperature, args.top_k)


def main(args: argparse.Namespace) -> int:
    _check(args)
    prompt = _prompt_text(args.prompt)
    from trainer.model.formulas import format_count
    from trainer.observe.hardware import detect_device
    from trainer.model.precision import PRECISIONS, precision_for
    from trainer.model.sampling import generate_text
    from trainer.train.from_checkpoint import checkpoint_path, load_model
    from trainer.data.tokenizer import get_encoding

    path = checkpoint_path(args.run)
    encoding = get_encoding()  # before loading the model: a missing tokenizer fails fast
    info = detect_device(args.device)
    device = info.device
    model, ckpt = load_model(path, device=device,
                             on_warning=lambda text: print(f"fwtui: warning: {text}", file=sys.stderr))
    if model.args.vocab_size < 50257:
        raise CheckpointError(
            f"{path}: vocab_size {model.args.vocab_size} is smaller than GPT-2's 50257 (a character-level "
            f"nanoGPT model?); fwtui sample decodes GPT-2 BPE tokens only"
        )
    iter_num = ckpt.get("iter_num", "unknown")
    # The run's dtype (fwtui's config or nanoGPT's), decided for this device as the trainer decides it;
    # none recorded, or a bf16 run sampled on a card without bf16: what dtype "auto" picks here.
    config = ckpt.get("config")
    dtype = config.get("dtype") if isinstance(config, dict) else None
    if dtype not in PRECISIONS or (dtype == "bfloat16" and info.is_cuda and not info.bf16):
        dtype = "auto"
    precision = precision_for(dtype, info)
    print(f"loaded {path}: iteration {iter_num}, {format_count(model.num_params())} parameters, on {device} "
          f"in {precision}", file=sys.stderr)
    for i in range(args.num_samples):
        seed = None if args.seed is None else args.seed + i  # distinct samples, each reproducible
        text = generate_text(model, encoding, prompt, max_new_tokens=args.max_new_tokens,
                             temperature=args.temperature, top_k=args.top_k, seed=seed, device=device,
                             precision=precision)
        print(prompt + text)
        print(RULE)
    return 0
