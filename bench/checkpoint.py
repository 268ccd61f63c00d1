"""How long training waits for a checkpoint: the Checkpointer's copy (held) against its write, and the
synchronous save it replaced.

    python bench/checkpoint.py [--preset gpt2-124m] [--repeats 3] [--dir /tmp] [--device cpu]

Builds the preset's real GPT with AdamW state (every parameter's exp_avg and exp_avg_sq: for gpt2-124m
about 1.5 GB in float32) and the payload the Trainer saves (trainer.train.checkpointer.checkpoint_payload).
Then, `--repeats` times each, after one warm-up save (its copy allocates the reused buffers):
  held      Checkpointer.save() returning: the copy to CPU memory, which is all training waits for;
  write     the writer thread's torch.save, fsync and rename (CheckpointSaved.write_seconds), beside training;
  sync save trainer.train.checkpoint.save_checkpoint on the live payload: what training waited before.
Prints the medians, the file size and the ratio write / held (goal: at least 5). The figures depend on
the disk under --dir and on the page cache. Imports only trainer/.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from trainer.config import load_preset  # noqa: E402
from trainer.model.gpt import GPT, ModelArgs  # noqa: E402
from trainer.observe import events as ev  # noqa: E402
from trainer.train.checkpoint import save_checkpoint  # noqa: E402
from trainer.train.checkpointer import Checkpointer, checkpoint_payload  # noqa: E402


def build_state(preset: str, device: str):
    """The preset's GPT, an AdamW with its moments filled (one step on zero gradients), a disabled scaler."""
    config = load_preset(preset)
    torch.manual_seed(0)
    model = GPT(ModelArgs.from_dict(config.model_args())).to(device)
    optimizer = torch.optim.AdamW(model.optimizer_groups(config.weight_decay), lr=config.learning_rate)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()  # creates exp_avg and exp_avg_sq for every parameter, as after a real step
    optimizer.zero_grad(set_to_none=True)
    scaler = torch.amp.GradScaler(device.split(":")[0], enabled=False)
    return config, model, optimizer, scaler


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="gpt2-124m")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where the run directory goes (default: the temp dir)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    config, model, optimizer, scaler = build_state(args.preset, args.device)

    def payload(it: int) -> dict:
        return checkpoint_payload(model=model, optimizer=optimizer, scaler=scaler, config=config, iter_num=it,
                                  best_val_loss=3.0, data_position={"position": it}, dataset={}, reason="eval")

    state_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    state_bytes += sum(t.numel() * t.element_size() for s in optimizer.state.values() for t in s.values()
                       if isinstance(t, torch.Tensor))
    print(f"preset {args.preset} on {args.device}; torch {torch.__version__}; {torch.get_num_threads()} threads; "
          f"state {state_bytes / 1e9:.2f} GB (model + AdamW moments); median of {args.repeats} after a warm-up")

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        run = Path(tmp) / "run"
        saved: list[ev.CheckpointSaved] = []
        checkpointer = Checkpointer(run, emit=lambda e: saved.append(e) if isinstance(e, ev.CheckpointSaved)
                                    else print(f"  {e.kind}: {getattr(e, 'message', e)}"))
        held = []
        for it in range(args.repeats + 1):
            checkpointer.wait()  # the write before is done: `held` is the copy alone, as at an eval interval
            seconds = checkpointer.save(it, "eval", payload(it))
            if it:  # the warm-up save allocates the copy's buffers
                held.append(seconds)
        checkpointer.wait()
        writes = [e.write_seconds for e in saved[1:]]
        size = saved[-1].bytes
        sync = []
        for it in range(args.repeats):
            t0 = time.perf_counter()
            save_checkpoint(run / "sync.pt", payload(it))
            sync.append(time.perf_counter() - t0)

    held_s, write_s, sync_s = (statistics.median(v) for v in (held, writes, sync))
    print("| measure | median seconds | each |")
    print("|---|---|---|")
    print(f"| training held (copy to CPU memory) | {held_s:.3f} | {', '.join(f'{v:.3f}' for v in held)} |")
    print(f"| write beside training (torch.save, fsync, rename) | {write_s:.3f} | "
          f"{', '.join(f'{v:.3f}' for v in writes)} |")
    print(f"| synchronous save (before: training held) | {sync_s:.3f} | {', '.join(f'{v:.3f}' for v in sync)} |")
    ratio = write_s / held_s if held_s > 0 else float("inf")
    print(f"file {size / 1e9:.2f} GB; write / held = {ratio:.1f} (goal >= 5: {'met' if ratio >= 5 else 'NOT met'}); "
          f"training waits {sync_s / held_s:.1f}x less than with the synchronous save")
    return 0


if __name__ == "__main__":
    sys.exit(main())
