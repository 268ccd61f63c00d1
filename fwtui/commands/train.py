"""`fwtui train --preset NAME --data PATH [--out RUN] [--set k=v ...] [--resume] [--auto-batch] [--seeds S,S]`:
headless. `--seeds` trains once per seed into sibling run directories (fwtui.commands.seeds).

Prints a line per log interval; Ctrl-C, SIGTERM or SIGHUP stop at the next step boundary with a
checkpoint. `--resume` continues RUN with RUN/config.toml's settings and data; `--set` changes only what it
names (trainer.runs.launch.resolve_config), and a changed learning-rate schedule prints a warning line with the
rate at the resume iteration before and after. Exit status 0 when the run completed or was stopped; a FwtuiError is one line and status 2
(printed by fwtui.cli).

Several processes: `--gpus N` (or `all`) makes this process `torchrun --standalone --nproc_per_node N -m fwtui
train ...` (the same arguments minus --gpus): torch.distributed.run, PyTorch's own launcher, called in this
process (launch_torchrun below), and every rank then runs this command again under torchrun's RANK /
WORLD_SIZE (trainer.train.distributed). `--nproc-cpu N` does the same with N CPU processes (gloo, device
cpu), for testing. A count that is more than the visible GPUs, or does not divide
gradient_accumulation_steps, is one line before anything starts. `torchrun ... -m fwtui train ...` typed
by the user (several nodes: torchrun's own --nnodes, --node_rank, --rdzv_* flags) runs the same code.

Signals: torchrun passes SIGINT, SIGTERM and SIGHUP to every rank, each rank's stop_on_signals asks for a
stop, and the boundary's collective (SharedControls) stops all of them at the same boundary, where rank 0
writes the checkpoint; torchrun gives them TORCH_ELASTIC_SHUTDOWN_TIMEOUT seconds (30 by default) before
SIGKILL. torchrun itself then raises SignalException (a traceback and status 1); launched by fwtui, that
is caught, torchrun's shutdown log lines are left out, and the user gets one line saying what the ranks
did, from the status each rank leaves in FWTUI_RANK_STATUS_DIR; status 0 when all stopped cleanly.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from fwtui.headless import HeadlessPrinter


def demo_choice(args: argparse.Namespace) -> None:
    """`--demo`: the demo corpus as --data (built once, then cached), cpu-tiny unless --preset says otherwise."""
    if not getattr(args, "demo", False):
        return
    from trainer.errors import ConfigError

    if args.data or args.resume:
        raise ConfigError(f"--demo trains on the demo corpus: drop {'--data' if args.data else '--resume'} "
                          "(or drop --demo)")
    from trainer.data.demo import build_demo_corpus

    args.data = str(build_demo_corpus())
    args.preset = args.preset or "cpu-tiny"
    if "--demo" in args.argv and "--data" not in args.argv:  # torchrun's ranks get the built path, not --demo
        args.argv = [a for a in args.argv if a != "--demo"] + ["--data", args.data, "--preset", args.preset]


def main(args: argparse.Namespace) -> int:
    demo_choice(args)
    if getattr(args, "seeds", None):
        from fwtui.commands import seeds

        return seeds.main(args, main)  # once per seed, each a whole run of this command
    if getattr(args, "gpus", None) is not None or getattr(args, "nproc_cpu", None) is not None:
        count = _process_count(args)
        if count > 1:
            return launch_torchrun(args.argv, count, cpu=args.gpus is None)
    from trainer.train.controls import Controls
    from trainer.observe.events import Finished
    from trainer.runs.launch import RunRequest, run_training
    from trainer.train.signals import stop_on_signals

    printer = HeadlessPrinter()
    outcome: dict[str, object] = {}  # the Finished event's reason and iter

    def sink(event) -> None:
        if isinstance(event, Finished):
            outcome["reason"], outcome["iter"] = event.reason, event.iter
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
    with stop_on_signals(controls, notify=printer.note if main_rank else None), _rank_status(outcome):
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


RANK_STATUS_ENV = "FWTUI_RANK_STATUS_DIR"
"""Set by launch_torchrun for its ranks: each leaves rank{RANK}.json there as it exits (see _rank_status)."""


@contextmanager
def _rank_status(outcome: dict) -> Iterator[None]:
    """Under launch_torchrun: leave this rank's exit status (0, or fwtui.cli's 2 for an error, 130 for an
    interrupt) with the Finished event's reason and iter in RANK_STATUS_ENV/rank{RANK}.json. A rank that
    leaves nothing was killed (torchrun's SIGKILL after its grace, or kill -9)."""
    folder = os.environ.get(RANK_STATUS_ENV)
    status = {"exit": 0}
    try:
        yield
    except KeyboardInterrupt:
        status["exit"] = 130
        raise
    except BaseException:
        status["exit"] = 2
        raise
    finally:
        if folder and Path(folder).is_dir():
            path = Path(folder) / f"rank{os.environ.get('RANK', '0')}.json"
            try:
                path.with_suffix(".tmp").write_text(json.dumps({**status, **outcome}))
                os.replace(path.with_suffix(".tmp"), path)  # the launcher reads a whole file or none
            except OSError:  # the launcher then says this rank was killed: wrong, but never a lost exit
                pass


def torchrun_args(cli_argv: list[str], count: int, cpu: bool) -> list[str]:
    """torchrun's arguments for `fwtui <cli_argv>` on COUNT processes of this machine (--gpus / --nproc-cpu
    taken out; `--set device=cpu` added for CPU processes)."""
    argv = _without_launch_flags(cli_argv) + (["--set", "device=cpu"] if cpu else [])
    return ["--standalone", f"--nproc_per_node={count}", "-m", "fwtui", *argv]


def launch_torchrun(cli_argv: list[str], count: int, cpu: bool) -> int:
    """Run torchrun (torch.distributed.run, in this process) on `fwtui <cli_argv>` with COUNT processes; the
    exit status. Signals sent to this process reach torchrun's handlers, which pass them to every rank."""
    import logging
    import tempfile

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    # Its shutdown warnings ("Received 15 death signal", "Sending process N closing signal"): the line below
    # says what the ranks did instead. Its errors still show.
    for name in ("torch.distributed.elastic.agent.server.api", "torch.distributed.elastic.multiprocessing.api"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="fwtui-ranks-") as folder:
        os.environ[RANK_STATUS_ENV] = folder
        try:
            run(parse_args(torchrun_args(cli_argv, count, cpu)))
            return 0
        except SignalException as err:
            code, line = _after_signal(signal_name(err.sigval), count, _statuses(folder, count))
        except ChildFailedError as err:
            code, line = _after_failure(err)
        finally:
            os.environ.pop(RANK_STATUS_ENV, None)
    print(line, file=sys.stdout if code == 0 else sys.stderr, flush=True)
    return code


def signal_name(sigval) -> str:
    try:
        return signal.Signals(int(sigval)).name
    except ValueError:
        return f"signal {sigval}"


def _statuses(folder: str, count: int) -> dict[int, dict]:
    """The status each rank left (rank -> {"exit", "reason", "iter"}); killed ranks are missing."""
    found = {}
    for rank in range(count):
        path = Path(folder) / f"rank{rank}.json"
        if path.is_file():
            found[rank] = json.loads(path.read_text())
    return found


def _after_signal(name: str, count: int, statuses: dict[int, dict]) -> tuple[int, str]:
    """Exit status and the one line once torchrun has passed a signal on and the ranks are gone."""
    killed = [r for r in range(count) if r not in statuses]
    failed = [r for r, s in statuses.items() if s.get("exit")]
    grace = os.environ.get("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", "30")
    if killed:
        return 1, (f"fwtui: {name}: rank(s) {', '.join(map(str, killed))} of {count} did not stop within torchrun's "
                   f"{grace} s and were killed; the last complete checkpoint stays (resume with --resume)")
    if failed:
        return max(statuses[r]["exit"] for r in failed), (
            f"fwtui: {name}: rank(s) {', '.join(map(str, failed))} of {count} ended with an error (above)")
    where = statuses.get(0, {})
    at = f" at iter {where['iter']:,} with a checkpoint" if where.get("reason") == "stopped" else ""
    return 0, f"{name}: torchrun passed it to the {count} processes; they stopped{at} and all exited 0"


def _after_failure(err) -> tuple[int, str]:
    """Exit status and the one line when a rank failed and torchrun ended the others."""
    rank, failure = err.get_first_failure()
    if failure.exitcode > 0:  # the rank said why itself (fwtui.cli's one line, above)
        return failure.exitcode, (f"fwtui: rank {rank} (pid {failure.pid}) exited with status {failure.exitcode} "
                                  "(its error is above); torchrun ended the other processes")
    return 1, (f"fwtui: rank {rank} (pid {failure.pid}) was killed by {failure.signal_name()}; torchrun ended the "
               "other processes. A checkpoint already written is complete: continue with --resume (any number "
               "of processes)")


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
