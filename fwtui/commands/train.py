"""`fwtui train --preset NAME --data PATH [--out RUN] [--set k=v ...] [--resume] [--auto-batch]`: headless.

Prints a line per log interval; Ctrl-C, SIGTERM or SIGHUP stop at the next step boundary with a
checkpoint. `--resume` continues RUN with RUN/config.toml's settings and data; `--set` changes only what it
names (trainer.runs.launch.resolve_config), and a changed learning-rate schedule prints a warning line with the
rate at the resume iteration before and after. Exit status 0 when the run completed or was stopped; a FwtuiError is one line and status 2
(printed by fwtui.cli).

Several processes: `--gpus N` (or `all`) replaces this process with `torchrun --standalone --nproc_per_node N
-m fwtui train ...` (the same arguments minus --gpus; torch.distributed.run, PyTorch's own launcher), and
every rank then runs this command again under torchrun's RANK / WORLD_SIZE (trainer.train.distributed).
`--nproc-cpu N` does the same with N CPU processes (gloo, device cpu), for testing. A count that is more
than the visible GPUs, or does not divide gradient_accumulation_steps, is one line before anything starts.
`torchrun ... -m fwtui train ...` typed by the user (several nodes: torchrun's own --nnodes, --node_rank,
--rdzv_* flags) runs the same code.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from fwtui.headless import HeadlessPrinter


def main(args: argparse.Namespace) -> int:
    if getattr(args, "gpus", None) is not None or getattr(args, "nproc_cpu", None) is not None:
        count = _process_count(args)
        if count > 1:
            _exec_torchrun(args.argv, count, cpu=args.gpus is None)
    from trainer.train.controls import Controls
    from trainer.observe.events import Finished
    from trainer.runs.launch import RunRequest, run_training
    from trainer.train.signals import stop_on_signals

    printer = HeadlessPrinter()
    outcome: dict[str, str] = {}

    def sink(event) -> None:
        if isinstance(event, Finished):
            outcome["reason"] = event.reason
        printer(event)

    from trainer.observe.events import FanOut
    from trainer.observe.trackers import tracker_sinks

    main_rank = os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0 alone speaks
    # TensorBoard (--tensorboard DIR) and W&B (wandb_log in the config): extra sinks on threads of their own
    trackers = tracker_sinks(tensorboard=getattr(args, "tensorboard", None), preset=args.preset,
                             say=printer.line) if main_rank else []
    request = RunRequest(preset=args.preset, data=args.data, out=Path(args.out) if args.out else None,
                         overrides=list(args.overrides), resume=args.resume, peak_tflops=args.peak_tflops,
                         auto_batch=args.auto_batch)
    controls = Controls()
    with stop_on_signals(controls, notify=printer.note if main_rank else None):
        try:
            run_dir = run_training(request, FanOut(sink, *trackers) if trackers else sink, controls)
        finally:
            for tracker in trackers:
                tracker.close()
    if main_rank:
        printer.finished_hint(run_dir, outcome.get("reason"))
    return 0


def _process_count(args: argparse.Namespace) -> int:
    """How many processes --gpus / --nproc-cpu ask for, checked against the machine and the config."""
    from trainer.errors import ConfigError
    from trainer.runs.launch import RunRequest, resolve_config

    if args.gpus is not None and args.nproc_cpu is not None:
        raise ConfigError("--gpus and --nproc-cpu exclude each other; pass one")
    if args.gpus is not None:
        import torch

        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if visible == 0:
            raise ConfigError("--gpus: no CUDA GPU is visible; drop --gpus (one process on this machine's "
                              "device), or --nproc-cpu N to try the several-process path on CPU")
        if args.gpus == "all":
            count = visible
        elif args.gpus.isdigit() and int(args.gpus) >= 1:
            count = int(args.gpus)
        else:
            raise ConfigError(f"--gpus {args.gpus!r}: give a number of GPUs (1 to {visible}) or all")
        if count > visible:
            raise ConfigError(f"--gpus {count}: only {visible} CUDA GPU(s) visible; use --gpus {visible} or --gpus all")
    else:
        count = args.nproc_cpu
        if count < 1:
            raise ConfigError(f"--nproc-cpu {count}: give a number of processes, 1 or more")
    config = resolve_config(RunRequest(preset=args.preset, data=args.data, out=Path(args.out) if args.out else None,
                                       overrides=list(args.overrides), resume=args.resume))
    accumulation = config.gradient_accumulation_steps
    if accumulation % count:
        fits = [n for n in range(1, count + 1) if accumulation % n == 0]
        raise ConfigError(f"{count} processes do not divide gradient_accumulation_steps {accumulation} (each runs "
                          f"an equal share, so tokens per iteration stay the preset's); use {fits[-1]} "
                          f"processes, or --set gradient_accumulation_steps={accumulation // count * count or count}")
    return count


def _exec_torchrun(cli_argv: list[str], count: int, cpu: bool) -> None:
    """Become `torchrun --standalone --nproc_per_node COUNT -m fwtui <this argv minus --gpus/--nproc-cpu>`:
    signals sent to this process (Ctrl-C, SIGTERM) then reach torchrun, which passes them to every rank."""
    import os
    import sys

    argv = _without_launch_flags(cli_argv)
    if cpu:
        argv += ["--set", "device=cpu"]
    os.execv(sys.executable, [sys.executable, "-m", "torch.distributed.run", "--standalone",
                              f"--nproc_per_node={count}", "-m", "fwtui", *argv])


def _without_launch_flags(argv: list[str]) -> list[str]:
    """argv minus --gpus N / --gpus=N / --nproc-cpu N / --nproc-cpu=N."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--gpus", "--nproc-cpu"):
            skip = True
        elif not arg.startswith(("--gpus=", "--nproc-cpu=")):
            out.append(arg)
    return out
