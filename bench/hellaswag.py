"""HellaSwag scoring speed: examples per second at cpu-tiny (random init) and, on a GPU, the full set at gpt2-124m.

    python bench/hellaswag.py [--file PATH] [--limit N] [--presets cpu-tiny,gpt2-124m] [--device auto]

Builds each preset's model with the config loader (presets/*.toml) and times
`trainer.train.hellaswag.score` as `fwtui eval` and the trainer call it: one forward of the 4 endings per
example, in the run's precision for the device (fp32 on a CPU, bf16 on a CUDA card that has it). The first
5 examples are a warm-up, not timed. The random init does not change the time (every example runs the
same ops); its accuracy is printed only to show the run was real (near chance, 0.25). Without --limit a
CPU scores 500 examples and a GPU all 10,042. The file: --file, else $FWTUI_HELLASWAG_FILE, else
../shared/data/hellaswag_val.jsonl, else fwtui's cache (trainer.data.hellaswag.locate). Imports only trainer/.
"""

from __future__ import annotations

import argparse
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
from trainer.train.hellaswag import score  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / data.FILE_NAME
WARMUP = 5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", help="hellaswag_val.jsonl")
    parser.add_argument("--limit", type=int, help="examples to time (default: 500 on CPU, all on GPU)")
    parser.add_argument("--presets", help="comma-separated (default cpu-tiny, plus gpt2-124m on CUDA)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    info = detect_device(args.device)
    file = args.file or (None if not SHARED.is_file() else SHARED)
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
        result = score(model, examples[WARMUP:], encoding, device=info.device, precision=precision)
        print(f"{name:<12} {result.count:>6,} examples in {result.seconds:7.2f} s = "
              f"{result.examples_per_sec:7.1f} examples/s ({precision}; random init, acc_norm "
              f"{result.acc_norm:.4f}, {result.cropped:,} cropped to block_size {config.block_size})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
