"""How long a sample takes: 200 new tokens from cpu-tiny (random init), with and without the KV cache.

    python bench/sample.py [--tokens 200] [--repeats 5] [--presets cpu-tiny] [--device auto]

Builds each preset's model with the config loader (presets/*.toml), and times
`trainer.model.sampling.generate_text` as the trainer calls it at a step boundary (the run's precision for the
device, top-k 200, temperature 0.8, an empty prompt, so 1 + 200 tokens: past block_size 128 the window
is cropped) with the KV cache and without it. Prints the median of `--repeats` timed runs after one
warm-up, tokens per second, the device and the torch version. On CUDA it adds gpt2-124m. Imports only
trainer/ (no textual). The random init does not matter for the time: every token runs the same ops.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from trainer.config import load_preset  # noqa: E402
from trainer.observe.hardware import detect_device  # noqa: E402
from trainer.model.gpt import GPT, ModelArgs  # noqa: E402
from trainer.model.precision import precision_for  # noqa: E402
from trainer.model.sampling import generate_text  # noqa: E402
from trainer.data.tokenizer import get_encoding  # noqa: E402


def time_samples(model: GPT, encoding, device: str, precision: str, tokens: int, repeats: int,
                 kv_cache: bool) -> float:
    """Median seconds for one sample of `tokens` new tokens over `repeats` runs after a warm-up.

    All `tokens` are generated even when the text stops at an <|endoftext|> (only its decoding stops).
    """
    times = []
    for i in range(repeats + 1):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        # seed i: each repeat a different text; top_k and temperature are what the dashboard's `s` asks for.
        generate_text(model, encoding, "", max_new_tokens=tokens, temperature=0.8, top_k=200, seed=i,
                      device=device, precision=precision, kv_cache=kv_cache)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i:  # the first run warms up (allocator, kernels)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--presets", default="cpu-tiny", help="comma-separated; gpt2-124m is added on CUDA")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    info = detect_device(args.device)
    names = args.presets.split(",")
    if info.is_cuda and "gpt2-124m" not in names:
        names.append("gpt2-124m")
    print(f"device: {info.device} ({info.name}); torch {torch.__version__}; "
          f"{torch.get_num_threads()} intra-op threads for training (sampling on a CPU uses 1)")
    print(f"{args.tokens} new tokens per sample, empty prompt, top-k 200, temperature 0.8; "
          f"median of {args.repeats} after a warm-up; random init (the time does not depend on the weights)")
    print("| preset | precision | KV cache | seconds per sample | tokens/s |")
    print("|---|---|---|---|---|")
    encoding = get_encoding()
    for name in names:
        config = load_preset(name)
        precision = precision_for(config.dtype, info)  # the run's precision, as the trainer decides it
        torch.manual_seed(0)
        model = GPT(ModelArgs.from_dict(config.model_args())).to(info.device).eval()
        for kv_cache in (True, False):
            seconds = time_samples(model, encoding, info.device, precision, args.tokens, args.repeats,
                                         kv_cache)
            print(f"| {name} | {precision} | {'yes' if kv_cache else 'no'} | {seconds:.3f} | "
                  f"{args.tokens / seconds:,.0f} |", flush=True)
        del model
    return 0


if __name__ == "__main__":
    sys.exit(main())
