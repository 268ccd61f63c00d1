"""The modern recipe against nanoGPT's, on our CPU: val loss at equal parameters and equal tokens.

    python bench/recipe.py            # ~20 min on 2 CPU cores: 2 corpora x 3 seeds x 2 recipes, the ablation
    python bench/recipe.py --quick    # ~3 min: fewer steps, 2 seeds, Shakespeare only, ablation with 1 seed

Both recipes train the same shape (n_layer, n_head, n_embd, block): the blocks' parameters (the
non-embedding count) are equal by construction (RMSNorm keeps LayerNorm's weight; neither has biases), and
both see the same batches (same seed, same sampler). The real components train: trainer.model.gpt.GPT,
trainer.train.optimizers.build_optimizer, trainer.train.schedule.lr_at. The text is read as UTF-8 bytes (vocab
256), so a small model's time goes into its blocks and not into a 50k-wide head: the comparison is between
recipes, not a GPT-2 figure. Printed: the val loss end points (mean and spread over seeds), the tokens the
modern recipe needs to reach nanoGPT's final val loss (linear between evaluations), an ablation (modern minus
one technique at a time), and the optimizer step time of Muon vs AdamW. Imports only trainer/.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from trainer.config import RunConfig  # noqa: E402
from trainer.model.gpt import GPT, ModelArgs  # noqa: E402
from trainer.recipe import RECIPES  # noqa: E402
from trainer.train.optimizers import build_optimizer  # noqa: E402
from trainer.train.schedule import lr_at  # noqa: E402

SHAPE = dict(n_layer=2, n_head=2, n_embd=64, block_size=128, vocab_size=256, bias=False, dropout=0.0)
BATCH = 8
EVAL_BATCHES = 8  # x BATCH sequences of the held-out tail, the same for every run
TECHNIQUES = ("rotary", "qk_norm", "relu2_mlp", "rms_norm", "zero_init_proj", "untied_head", "logit_softcap",
              "muon")


def corpus_bytes(which: str) -> torch.Tensor | None:
    """The corpus as a uint8 tensor of its UTF-8 bytes, documents joined by a blank line; None if absent."""
    import pyarrow.parquet as pq

    if which == "shakespeare":
        path = Path(os.environ.get("FWTUI_SHAKESPEARE", Path(__file__).resolve().parents[2] / "shared" / "data"
                                   / "shakespeare-fineweb.parquet"))
        if not path.is_file():
            return None
    else:
        from trainer.data.demo import build_demo_corpus

        path = build_demo_corpus()
    texts = pq.read_table(path, columns=["text"]).column("text").to_pylist()
    data = "\n\n".join(t for t in texts if t).encode("utf-8")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def config_for(recipe: str, iters: int, **switches) -> RunConfig:
    """The run's settings: nanoGPT's are cpu-tiny's (lr 2e-3, beta2 0.99); modern adds Muon at 0.02."""
    return RunConfig(recipe=recipe, **SHAPE, batch_size=BATCH, gradient_accumulation_steps=1,
                     learning_rate=2e-3, min_lr=2e-4, beta2=0.99, weight_decay=0.1, max_iters=iters,
                     warmup_iters=iters // 10, lr_decay_iters=iters, **switches)


def batch(data: torch.Tensor, gen: torch.Generator, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    starts = torch.randint(0, data.numel() - block - 1, (BATCH,), generator=gen)
    rows = torch.stack([data[s:s + block + 1] for s in starts.tolist()]).long()  # (B, block + 1)
    return rows[:, :-1].contiguous(), rows[:, 1:].contiguous()


def train(cfg: RunConfig, train_data: torch.Tensor, val: list, seed: int, evals: int) -> dict:
    """Train one run; returns its val curve [(tokens, loss)] and the mean optimizer.step / step seconds."""
    torch.manual_seed(seed)
    model = GPT(ModelArgs.from_dict({**cfg.model_args(), **SHAPE}))
    optimizer = build_optimizer(cfg, model, "cpu")
    gen = torch.Generator().manual_seed(seed)
    curve, step_s, opt_s = [], 0.0, 0.0
    every = max(cfg.max_iters // evals, 1)
    for it in range(cfg.max_iters + 1):
        if it % every == 0 or it == cfg.max_iters:
            model.eval()
            with torch.no_grad():
                loss = sum(model(x, y)[1].item() for x, y in val) / len(val)
            model.train()
            curve.append((it * BATCH * cfg.block_size, loss))
        if it == cfg.max_iters:
            break
        t0 = time.perf_counter()
        x, y = batch(train_data, gen, cfg.block_size)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(it, cfg)
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        t1 = time.perf_counter()
        optimizer.step()
        t2 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        step_s += time.perf_counter() - t0
        opt_s += t2 - t1
    return {"curve": curve, "step_s": step_s / cfg.max_iters, "opt_s": opt_s / cfg.max_iters}


def tokens_to_reach(curve: list, target: float) -> float | None:
    """Tokens at which the curve first reaches `target`, linear between evaluations; None if never."""
    for (t0, l0), (t1, l1) in zip(curve, curve[1:]):
        if l1 <= target:
            return t1 if l0 == l1 else t0 + (t1 - t0) * (l0 - target) / (l0 - l1)
    return None


def spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.4f} ± {sd:.4f} (sd, n={len(values)})"


def mean_curve(runs: list[dict]) -> list:
    return [(pts[0][0], statistics.fmean(p[1] for p in pts)) for pts in zip(*(r["curve"] for r in runs))]


def compare(name: str, data: torch.Tensor, iters: int, seeds: list[int], evals: int) -> dict:
    split = int(data.numel() * 0.9)
    train_data, val_data = data[:split], data[split:]
    val_gen = torch.Generator().manual_seed(0)
    val = [batch(val_data, val_gen, SHAPE["block_size"]) for _ in range(EVAL_BATCHES)]
    print(f"\n== {name}: {data.numel():,} bytes, {iters} steps x {BATCH * SHAPE['block_size']:,} tokens, "
          f"seeds {seeds}", flush=True)
    runs = {}
    for recipe in ("nanogpt", "modern"):
        runs[recipe] = [train(config_for(recipe, iters), train_data, val, s, evals) for s in seeds]
        print(f"{recipe:8s} final val loss {spread([r['curve'][-1][1] for r in runs[recipe]])}", flush=True)
    target = mean_curve(runs["nanogpt"])[-1][1]
    total = mean_curve(runs["nanogpt"])[-1][0]
    reach = tokens_to_reach(mean_curve(runs["modern"]), target)
    if reach is None:
        print(f"modern never reaches nanoGPT's final val loss {target:.4f} in {total:,} tokens")
    else:
        print(f"tokens to reach nanoGPT's final val loss {target:.4f}: nanogpt {total:,}, modern {reach:,.0f} "
              f"({reach / total:.2f}x)")
    return {"name": name, "train": train_data, "val": val, "runs": runs, "target": target}


def ablation(results: list[dict], iters: int, seeds: list[int], evals: int) -> None:
    """Modern with one technique flipped, on every corpus and seed; the cost is paired by seed (the same
    batches and initial draw), so its spread is the technique's, not the seeds'."""
    names = [r["name"] for r in results]
    print(f"\n== ablation ({', '.join(names)}; seeds {seeds}): modern with one technique flipped; the cost is the "
          f"val loss change, mean ± sd over seeds (paired); > 0: the default is right", flush=True)
    for name in TECHNIQUES:
        off = 0.0 if name == "logit_softcap" else False
        on = RECIPES["modern"][name] != off
        flip = off if on else (30.0 if name == "logit_softcap" else True)  # off by default: try it on
        costs = []
        for res in results:
            base = [r["curve"][-1][1] for r in res["runs"]["modern"][:len(seeds)]]
            flipped = [train(config_for("modern", iters, **{name: flip}), res["train"], res["val"], s, evals)
                       ["curve"][-1][1] for s in seeds]
            delta = [f - b for f, b in zip(flipped, base)]
            costs.append(f"{res['name']} {statistics.fmean(delta):+.4f} ± "
                         f"{statistics.stdev(delta) if len(delta) > 1 else 0.0:.4f}")
        verb = "removing" if on else "adding  "
        print(f"  {verb} {name:15s} {'; '.join(costs)}", flush=True)


def step_only(recipe: str, repeats: int = 30) -> float:
    """Seconds of one optimizer.step alone (the same gradients each time), mean of `repeats` after 3 warm-ups."""
    cfg = config_for(recipe, 100)
    torch.manual_seed(0)
    model = GPT(ModelArgs.from_dict({**cfg.model_args(), **SHAPE}))
    optimizer = build_optimizer(cfg, model, "cpu")
    x = torch.randint(0, SHAPE["vocab_size"], (BATCH, SHAPE["block_size"]))
    model(x, x)[1].backward()
    for _ in range(3):
        optimizer.step()
    t0 = time.perf_counter()
    for _ in range(repeats):
        optimizer.step()
    return (time.perf_counter() - t0) / repeats


def optimizer_cost(results: dict) -> None:
    alone = {recipe: step_only(recipe) for recipe in ("nanogpt", "modern")}
    print(f"\n== optimizer.step alone, same model: AdamW {alone['nanogpt'] * 1e3:.2f} ms, Muon + AdamW "
          f"{alone['modern'] * 1e3:.2f} ms ({torch.get_num_threads()} threads)")
    print("== optimizer.step within the runs above, mean a step (same model shape, same batches)")
    for recipe, runs in results["runs"].items():
        opt = statistics.fmean(r["opt_s"] for r in runs)
        step = statistics.fmean(r["step_s"] for r in runs)
        print(f"{recipe:8s} ({'Muon + AdamW' if recipe == 'modern' else 'AdamW'}): optimizer.step "
              f"{opt * 1e3:.2f} ms of a {step * 1e3:.1f} ms step ({opt / step:.1%})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about 3 minutes instead of about 20")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    iters, seeds, evals = (150, [1, 2], 6) if args.quick else (400, [1, 2, 3], 10)
    print(f"shape {SHAPE}, batch {BATCH}, torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"{args.threads} threads")
    results = []
    for name in ("shakespeare",) if args.quick else ("shakespeare", "demo"):
        data = corpus_bytes(name)
        if data is None:
            print(f"\n== {name}: corpus not found (set FWTUI_SHAKESPEARE to the parquet); skipped")
            continue
        results.append(compare(name, data, iters, seeds, evals))
    if not results:
        data = corpus_bytes("demo")
        results.append(compare("demo", data, iters, seeds, evals))
    ablation(results, iters, seeds[:1] if args.quick else seeds, evals)
    optimizer_cost(results[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
