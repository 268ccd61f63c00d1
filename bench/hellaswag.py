"""HellaSwag scoring speed: examples per second at cpu-tiny (random init) and, on a GPU, the full set at gpt2-124m.

    python bench/hellaswag.py [--file PATH] [--limit N] [--presets cpu-tiny,gpt2-124m] [--device auto]
                              [--budget-s S]

Builds each preset's model with the config loader (presets/*.toml) and times
`trainer.train.hellaswag.score` as `fwtui eval` and the trainer call it: one forward of the 4 endings per
example, in the run's precision for the device (fp32 on a CPU, bf16 on a CUDA card that has it). The first
5 examples are a warm-up, not timed. The random init does not change the time (every example runs the
same ops); its accuracy is printed only to show the run was real (near chance, 0.25). Without --limit a
CPU scores 500 examples and a GPU all 10,042. --budget-s stops a preset after the chunk of 100 examples
that crosses S seconds and reports the rate over what it scored (bench/gpu_check.sh uses it, so a slow card
still yields a figure inside the stage's timeout). The file: --file, else $FWTUI_HELLASWAG_FILE, else
shared/data/hellaswag_val.jsonl in the checkout or beside it (../shared), else fwtui's cache
(trainer.data.hellaswag.locate). Imports only trainer/.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from trainer.config import load_preset  # noqa: E402
from trainer.data import hellaswag as data  # noqa: E402
from trainer.data.tokenizer import get_encoding  # noqa: E402
from trainer.model.gpt import GPT, ModelArgs  # noqa: E402
from trainer.model.precision import precision_for  # noqa: E402
from trainer.observe.hardware import detect_device  # noqa: E402
from trainer.train.hellaswag import HellaSwagResult, score  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = (ROOT / "shared" / "data" / data.FILE_NAME, ROOT.parent / "shared" / "data" / data.FILE_NAME)
WARMUP = 5
CHUNK = 100  # examples scored between two looks at the clock under --budget-s


def scored_within(model, examples, encoding, device: str, precision: str, budget_s: float | None):
    """score() over `examples`, in chunks when there is a budget: (result summed over the chunks scored,
    examples scored). Chunks change nothing but where the clock is read: each example is its own forward."""
    total = HellaSwagResult()
    for start in range(0, len(examples), CHUNK if budget_s else len(examples)):
        part = score(model, examples[start:start + (CHUNK if budget_s else len(examples))], encoding,
                     device=device, precision=precision)
        for name in ("count", "correct", "correct_norm", "cropped", "seconds"):
            setattr(total, name, getattr(total, name) + getattr(part, name))
        if budget_s and total.seconds >= budget_s:
            break
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", help="hellaswag_val.jsonl")
    parser.add_argument("--limit", type=int, help="examples to time (default: 500 on CPU, all on GPU)")
    parser.add_argument("--presets", help="comma-separated (default cpu-tiny, plus gpt2-124m on CUDA)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--budget-s", type=float, help="stop a preset once this many seconds are scored")
    args = parser.parse_args()
    info = detect_device(args.device)
    file = args.file or os.environ.get(data.ENV_VAR) or next((p for p in SHARED if p.is_file()), None)
    source = data.load(file, on_note=lambda t: print(t, file=sys.stderr))
    presets = args.presets.split(",") if args.presets else ["cpu-tiny"] + (["gpt2-124m"] if info.is_cuda else [])
    limit = args.limit or (len(source.examples) if info.is_cuda else 500)
    examples = source.examples[:WARMUP + limit]
    encoding = get_encoding()
    threads = "CUDA" if info.is_cuda else f"{torch.get_num_threads()} CPU threads, scored on 1"
    print(f"torch {torch.__version__}, {info.name} ({info.device}), {threads}; "
          f"{source.path} ({'published' if source.published else 'not the published file'})")
    for name in presets:
        config = load_preset(name)
        precision = precision_for(config.dtype, info)
        torch.manual_seed(0)
        model = GPT(ModelArgs.from_dict(config.model_args())).to(info.device)
        score(model, examples[:WARMUP], encoding, device=info.device, precision=precision)
        if info.is_cuda:
            torch.cuda.synchronize()
        timed = examples[WARMUP:]
        result = scored_within(model, timed, encoding, info.device, precision, args.budget_s)
        print(f"{name:<12} {result.count:>6,} examples in {result.seconds:7.2f} s = "
              f"{result.examples_per_sec:7.1f} examples/s ({precision}; random init, acc_norm "
              f"{result.acc_norm:.4f}, {result.cropped:,} cropped to block_size {config.block_size})")
        if result.count < len(timed):
            print(f"{'':<12} stopped at the {args.budget_s:g} s budget after {result.count:,} of {len(timed):,}; "
                  f"all {len(timed):,} at this rate: {len(timed) / result.examples_per_sec:.1f} s (an estimate)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
