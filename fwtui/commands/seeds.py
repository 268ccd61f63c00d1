"""`fwtui train ... --seeds 1337,7,42`: the same config trained once per seed, into sibling run directories.

RUN (--out, else runs/<preset>-<time>) becomes RUN-seed1337, RUN-seed7, RUN-seed42: each a whole run of its
own (config.toml, events.jsonl, checkpoint) whose config differs only by `seed`, so `fwtui compare` puts
them in one group (a mean line with a min-max band) and `fwtui compare --summary` tests one group against
another (trainer.runs.significance). One after another in this process; or, when several GPUs are visible
and --gpus is not given, one run per GPU at a time, each a `fwtui train` child process that sees only its
card (CUDA_VISIBLE_DEVICES), its lines prefixed with its seed. A stop (Ctrl-C) ends the run in progress with
its checkpoint, as always, and the seeds not yet started are named, not run.
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import threading
from pathlib import Path

from trainer.errors import ConfigError

SEED_FLAGS = ("--seeds", "--out")
"""What a seed's own command line drops from the user's (each seed gets its own --out and --set seed=S)."""


def parse_seeds(text: str) -> list[int]:
    """'1337,7,42' -> [1337, 7, 42]; ConfigError with one line for anything else, or a repeated seed."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or not all(p.isdigit() for p in parts):
        raise ConfigError(f"--seeds {text!r}: give seeds as whole numbers separated by commas, e.g. --seeds 1337,7,42")
    seeds = [int(p) for p in parts]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {text!r}: a seed is repeated (it would train the same run twice); list each once")
    return seeds


def seed_run_dirs(base: Path, seeds: list[int]) -> list[Path]:
    """RUN -> [RUN-seed1337, RUN-seed7, ...], siblings in RUN's parent."""
    return [base.parent / f"{base.name}-seed{seed}" for seed in seeds]


def argv_for_seed(argv: list[str], seed: int, out: Path) -> list[str]:
    """The user's command line for one seed: --seeds and --out taken out, its own --out and --set seed=S."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in SEED_FLAGS:
            skip = True
        elif not arg.startswith(tuple(f"{flag}=" for flag in SEED_FLAGS)):
            kept.append(arg)
    return [*kept, "--out", str(out), "--set", f"seed={seed}"]


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def plan_seed_runs(args: argparse.Namespace) -> tuple[list[int], list[Path]]:
    """The seeds and their run directories, checked before anything trains: one line for a bad flag mix, a
    seed set with --set, or a directory that is already there (never trained over)."""
    from trainer.runs.launch import RunRequest, default_run_dir, resolve_config

    seeds = parse_seeds(args.seeds)
    if args.resume:
        raise ConfigError("--seeds starts new runs and --resume continues one; drop one of them "
                          "(resume each seed's run with `fwtui train --out RUN-seedS --resume`)")
    if any(o.split("=", 1)[0].strip() == "seed" for o in args.overrides):
        raise ConfigError("--seeds sets each run's seed; drop --set seed=...")
    config = resolve_config(RunRequest(preset=args.preset, data=args.data, overrides=list(args.overrides)))
    base = Path(args.out) if args.out else default_run_dir(config)
    dirs = seed_run_dirs(base, seeds)
    taken = [str(d) for d in dirs if d.exists()]
    if taken:
        raise ConfigError(f"{', '.join(taken)} already there; pick another --out (the seeds' runs go to "
                          f"{base.name}-seedS beside it)")
    return seeds, dirs


def main(args: argparse.Namespace, train_one) -> int:
    """Train every seed; `train_one(args)` is `fwtui train`'s single-run main. The highest exit status."""
    seeds, dirs = plan_seed_runs(args)
    gpus = visible_gpus() if args.gpus is None and args.nproc_cpu is None else 0
    if gpus > 1:
        return _per_gpu(args.argv, seeds, dirs, gpus)
    from trainer.runs.listing import read_run

    worst = 0
    for i, (seed, out) in enumerate(zip(seeds, dirs)):
        print(f"seed {seed} ({i + 1} of {len(seeds)}): {out}", flush=True)
        one = copy.copy(args)
        one.out, one.seeds, one.demo = str(out), None, False  # --demo already chose the data (train.demo_choice)
        one.overrides = [*args.overrides, f"seed={seed}"]
        one.argv = argv_for_seed(args.argv, seed, out)  # --gpus N hands this to torchrun
        worst = max(worst, train_one(one))
        if read_run(out).status == "stopped" and i + 1 < len(seeds):
            left = ", ".join(str(s) for s in seeds[i + 1:])
            print(f"stopped at seed {seed}: seeds {left} not run (start them with --seeds {left.replace(' ', '')})")
            break
    print(f"compare them: fwtui compare {' '.join(str(d) for d in dirs)} --summary")
    return worst


def _per_gpu(argv: list[str], seeds: list[int], dirs: list[Path], gpus: int) -> int:
    """One `fwtui train` child per seed, at most one per GPU at a time; their lines prefixed `[seed S]`."""
    pending = list(zip(seeds, dirs))
    running: dict[int, tuple[subprocess.Popen, threading.Thread]] = {}  # gpu -> child
    worst = 0
    print(f"{len(seeds)} seeds on {gpus} GPUs, one run a GPU", flush=True)
    while pending or running:
        for gpu in range(gpus):
            if gpu not in running and pending:
                seed, out = pending.pop(0)
                env = {**os.environ, "CUDA_VISIBLE_DEVICES": str(gpu)}
                child = subprocess.Popen([sys.executable, "-m", "fwtui", *argv_for_seed(argv, seed, out)], env=env,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                relay = threading.Thread(target=_relay, args=(child, f"[seed {seed} · GPU {gpu}] "), daemon=True)
                relay.start()
                running[gpu] = (child, relay)
        for gpu, (child, relay) in list(running.items()):
            try:
                code = child.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                continue
            relay.join()
            worst = max(worst, code)
            del running[gpu]
    print(f"compare them: fwtui compare {' '.join(str(d) for d in dirs)} --summary")
    return worst


def _relay(child: subprocess.Popen, prefix: str) -> None:
    for line in child.stdout:
        sys.stdout.write(prefix + line)
        sys.stdout.flush()
