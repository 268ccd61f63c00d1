"""One training run from a request: config, data, run directory, event log, then the Trainer.

Every face (the headless `fwtui train`, the app's engine worker, the tests) starts a run here, so a run
directory always holds the same three files: config.toml (exactly what ran, with the schedule as numbers
and the prepared data directory as `dataset`), events.jsonl (every event, appended on resume) and ckpt.pt.

A resume reads config.toml (what ran), applies the user's --set on top (only what is set changes), and
loads ckpt.pt once, in the Trainer.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from trainer.observe import events as ev
from trainer.train.checkpoint import CKPT_FILE
from trainer.train.checkpointer import check_room
from trainer.train.leftovers import recover_temps
from trainer.model.formulas import figures_for
from trainer.config import RunConfig, apply_overrides, config_to_toml, load_preset
from trainer.train.controls import PREPARING, Controls
from trainer.data.dataset import cache_root
from trainer.errors import ConfigError, DataError, FwtuiError, StoppedWhilePreparing, as_user_error
from trainer.train.distributed import Dist
from trainer.train.loop import Trainer
from trainer.train.oom import is_out_of_memory
from trainer.train.resume import CONFIG_FILE, DATA_KEY, config_from_checkpoint, read_run_config
from trainer.observe.hardware import DeviceInfo, detect_device
from trainer.observe.runlog import EventLogWriter
from trainer.observe.vitals import VitalsSink
from trainer.own_files import check_own_folder, fresh_file
from trainer.runs.listing import RunLock
from trainer.train.schedule import schedule_warnings



@dataclass
class RunRequest:
    preset: str | Path | RunConfig | None
    """A preset name or file, or a RunConfig; on --resume it may be None (RUN/config.toml is used)."""
    data: str | Path | None
    """Parquet file/dir/glob or a prepared directory; on --resume None means the run's own data."""
    out: Path | None = None
    overrides: list[str] = field(default_factory=list)
    resume: bool = False
    peak_tflops: float | None = None
    auto_batch: bool = False


def default_run_dir(config: RunConfig, runs_root: Path = Path("runs")) -> Path:
    return runs_root / f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def resolve_config(request: RunRequest) -> RunConfig:
    """The preset (or, on resume, RUN/config.toml) with the --set overrides applied, validated.

    On --resume only what is set changes: a larger max_iters keeps the run's lr_decay_iters (past it the
    rate stays at min_lr, as nanoGPT's get_lr), a new learning_rate keeps its min_lr."""
    if request.resume and request.out is None:
        raise ConfigError("--resume needs --out RUN: the run directory to continue")
    saved = Path(request.out) / CONFIG_FILE if request.out is not None else None
    if request.resume and saved is not None and saved.is_file():
        config, _ = read_run_config(request.out)  # what the run trained with, including an --auto-batch change
    elif request.resume and saved is not None and (lost := _config_of_checkpoint(request)) is not None:
        config = lost  # config.toml lost: the checkpoint carries the whole config (a warning says so in _run)
    elif isinstance(request.preset, RunConfig):
        config = request.preset
    elif request.preset is not None:
        config = load_preset(request.preset)
    elif request.resume:
        raise ConfigError(f"--resume: {saved} is missing; pass --preset with the run's preset")
    else:
        raise ConfigError("no preset given; pass --preset NAME (`fwtui presets` lists them)")
    resolved = apply_overrides(config, list(request.overrides), follow=not request.resume).validate()
    if request.resume and saved is not None and saved.is_file():
        _check_resume_keeps_its_run(request, config, resolved)
    return resolved


def _check_resume_keeps_its_run(request: RunRequest, ran: RunConfig, resolved: RunConfig) -> None:
    """A resume continues RUN's own config: a --preset naming another one, or a --set recipe=..., would only
    relabel config.toml (the checkpoint decides the model and optimizer), so both are refused in one line."""
    if request.preset is not None:
        asked = request.preset if isinstance(request.preset, RunConfig) else load_preset(request.preset)
        if asked.name != ran.name:
            raise ConfigError(f"--resume continues {request.out} with its own config (preset {ran.name!r}), not "
                              f"{asked.name!r}; drop --preset, or start a new run with another --out")
    if resolved.recipe != ran.recipe:
        raise ConfigError(f"--set recipe={resolved.recipe}: {request.out} trained with the {ran.recipe!r} recipe "
                          "and its checkpoint holds that model and optimizer; drop that --set, or start a new run "
                          "with another --out")


def _config_of_checkpoint(request: RunRequest) -> RunConfig | None:
    """A resumed run's config from its checkpoint when config.toml is lost; None when the checkpoint holds
    none fwtui can read and a --preset is given (it is used instead)."""
    try:
        return config_from_checkpoint(request.out)[0]
    except ConfigError:
        if request.preset is not None:
            return None
        raise


def prepare_run_dir(request: RunRequest, config: RunConfig) -> Path:
    """Create (or, on resume, check) the run directory, owner-only."""
    if request.resume:
        if request.out is None:
            raise ConfigError("--resume needs --out RUN: the run directory to continue")
        run_dir = Path(request.out)
        if not (run_dir / CKPT_FILE).exists() and not (run_dir / "ckpt.prev.pt").exists():
            raise ConfigError(f"--resume: no checkpoint in {run_dir}; train it first, or drop --resume")
    else:
        run_dir = Path(request.out) if request.out is not None else default_run_dir(config)
        if (run_dir / CKPT_FILE).exists():
            raise ConfigError(f"{run_dir} already holds a run (ckpt.pt); add --resume to continue it, "
                              "or pass another --out")
    check_own_folder(run_dir)  # before tightening it: root may chmod and write into anyone's folder
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(run_dir, 0o700)
    return run_dir


def write_config(run_dir: Path, config: RunConfig, data_dir: str | Path | None = None) -> None:
    """RUN/config.toml, atomically (a rewrite after --auto-batch must never leave half a file); with
    `data_dir`, a `dataset = "..."` line that --resume reads instead of opening the checkpoint."""
    path = run_dir / CONFIG_FILE
    tmp = path.with_name(path.name + ".tmp")
    text = config_to_toml(config)
    if data_dir is not None:
        # A JSON string is a valid TOML basic string (the same escapes: \\, \", \uXXXX).
        text += ("# the prepared data this run trains on; --resume without --data reads it\n"
                 f"{DATA_KEY} = {json.dumps(str(data_dir))}\n")
    fd = fresh_file(tmp)  # never through a symlink planted at config.toml.tmp
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def resolve_run_data(spec: str | Path | None, config: RunConfig, sink: ev.EventSink, run_dir: Path,
                     controls: Controls | None = None):
    """The prepared dataset: prepares parquet through the cache (PrepareProgress events), then PrepareDone.
    A stop in `controls` (Ctrl-C, SIGTERM) ends a prepare at its next row group: StoppedWhilePreparing."""
    from trainer.data.ingest import resolve_data

    if spec is None:  # --resume without --data: the run's own prepared directory
        spec = _data_dir_of_run(run_dir)
    t0 = time.perf_counter()
    with controls.doing(PREPARING) if controls is not None else contextlib.nullcontext():
        data = resolve_data(spec, text_column=config.text_column, val_fraction=config.val_fraction, progress=sink,
                            stopping=(lambda: controls.stop_requested) if controls is not None else None)
    sink(ev.PrepareDone(data_dir=str(data.dir), train_tokens=data.train_tokens, val_tokens=data.val_tokens,
                        documents=data.documents, seconds=time.perf_counter() - t0, cached=data.cached))
    for split, tokens in (("train", data.train_tokens), ("val", data.val_tokens)):
        if tokens <= config.block_size + 1:
            raise DataError(f"{data.dir}: the {split} split holds {tokens} tokens, not more than block_size + 1 "
                            f"({config.block_size + 1}); use more data, a larger val_fraction, or a smaller "
                            "--set block_size")
    return data


def fit_to_device(config: RunConfig, info: DeviceInfo, request: RunRequest, sink: ev.EventSink) -> RunConfig:
    """The config to run on `info`'s device: the plan's memory model asked once before the first step
    (trainer.plan.fit): a model that cannot fit is refused, a micro-batch that would not is warned about, or
    with --auto-batch made smaller (same tokens per iteration)."""
    from trainer.plan.fit import check_fit

    verdict = check_fit(config, device_name=info.name, memory_bytes=info.memory_bytes, on_cuda=info.is_cuda,
                        bf16_supported=info.bf16, auto_batch=request.auto_batch)
    for message in verdict.warnings:
        sink(ev.Warning(message=message))
    return verdict.config


def _data_dir_of_run(run_dir: Path) -> str:
    """The `dataset` line of RUN/config.toml (the checkpoint is not opened for it: the Trainer loads it once);
    with config.toml lost, the data directory the checkpoint records."""
    if (run_dir / CONFIG_FILE).is_file():
        directory = read_run_config(run_dir)[1]
    else:
        try:
            directory = config_from_checkpoint(run_dir)[1]
        except ConfigError:
            directory = None
    if not directory:
        raise DataError(f"{run_dir / CONFIG_FILE} does not say which data the run trained on (a run from an "
                        "older fwtui, or made without config.toml); pass --data with its prepared directory "
                        "(the data_dir of its run_started line in events.jsonl)")
    return directory


def run_training(request: RunRequest, sink: ev.EventSink, controls: Controls | None = None) -> Path:
    """Run (or resume) training to the end or a stop; returns the run directory. Blocks.

    Emits PrepareProgress/PrepareDone, RunStarted, Step, Eval, CheckpointSaved, Sample, StateChanged,
    Warning and Finished; on an error, Failed(message) and then the error is raised (FwtuiError for
    anything the user can fix).
    """
    controls = controls or Controls()
    config = resolve_config(request)
    ranks = Dist.from_env()  # torchrun's RANK and WORLD_SIZE (trainer.train.distributed); one process without
    config, fitted = fit_batch(request, config, ranks.world_size)
    notes = [fitted] if fitted else []
    if not ranks.active:
        return _run(request, config, sink, controls, ranks, notes)
    ranks.split_accumulation(config.gradient_accumulation_steps)  # a count that does not divide: one line
    ranks.start(config.device)
    try:
        ranks.gather_names(detect_device(config.device, request.peak_tflops).name)
        if ranks.is_main:
            return _run(request, config, sink, controls, ranks, notes)
        return _follow_rank0(request, config, sink, controls, ranks)
    finally:
        ranks.stop()


def fit_batch(request: RunRequest, config: RunConfig, world_size: int) -> tuple[RunConfig, str | None]:
    """A new run on CUDA: the micro-batch fitted to the card (trainer.plan.fit), with the line that says so;
    a resume keeps what ran, and CPU runs keep the preset's."""
    if request.resume:
        return config, None
    from trainer.observe.hardware import detect_device
    from trainer.plan.fit import fit_to_card

    info = detect_device(config.device, request.peak_tflops)
    if not info.is_cuda:
        return config, None
    return fit_to_card(config, info.memory_bytes, bf16_supported=info.bf16, overrides=request.overrides,
                       world_size=world_size, card=f"the {info.name}")


def _run(request: RunRequest, config: RunConfig, sink: ev.EventSink, controls: Controls, ranks: Dist,
         notes: list[str] = ()) -> Path:
    """The run on one process, or on rank 0 of several: rank 0 alone takes the lock, writes config.toml,
    events.jsonl and ckpt.pt and serves control/; once the data is ready it tells the other ranks where."""
    told = False
    try:
        if request.data is None and not request.resume:
            raise DataError("no --data given; pass parquet file(s), a directory, a glob or a prepared directory")
        info = detect_device(config.device, request.peak_tflops)  # a device this machine lacks: before any file
        if request.data is not None:  # a missing file or column is one line, and leaves no run directory behind
            from trainer.data.ingest import check_data

            check_data(request.data, text_column=config.text_column)
        run_dir = prepare_run_dir(request, config)
    except BaseException as err:
        user_error = as_user_error(err)  # --out refused (permission, read-only, a file in the way, too long)
        ranks.tell_others(user_error)
        if user_error is not err:
            raise user_error from None
        raise
    # One trainer per run directory; `fwtui runs` reads liveness from this lock.
    with RunLock(run_dir):
        log = EventLogWriter(run_dir)
        out = VitalsSink(ev.FanOut(log, sink))  # the card's vitals onto each Step (trainer.observe.vitals)
        trainer: Trainer | None = None
        channel = None
        started = time.perf_counter()
        try:
            channel = _open_control_channel(run_dir, controls, out)
            for line in recover_temps(run_dir):  # before anything loads: a complete temp may be the newest save
                out(ev.Warning(message=line))
            if request.resume and not (run_dir / CONFIG_FILE).is_file():
                out(ev.Warning(message=f"{run_dir / CONFIG_FILE} is missing: the run's config and data are read "
                                       "from its checkpoint; config.toml is written again when training starts"))
            for message in [*notes, *schedule_warnings(config)]:
                out(ev.Warning(message=message))
            if not request.resume:
                write_config(run_dir, config)  # now, so `fwtui runs` names the preset while data is prepared
            data = resolve_run_data(request.data, config, out, run_dir, controls)
            if not request.resume:
                write_config(run_dir, config, data.dir)
            ranks.tell_others((str(run_dir), str(data.dir)))
            told = True
            fitted = fit_to_device(config, info, request, out)
            if fitted is not config and not request.resume:  # --auto-batch made the micro-batch smaller
                write_config(run_dir, fitted, data.dir)
            config = fitted
            check_room(run_dir, figures_for(config).checkpoint_bytes)  # no checkpoint fits: said before step 0
            trainer = Trainer(config, data, run_dir, sink=_config_written_at_start(run_dir, config, data.dir, out)
                              if request.resume else out, controls=controls, peak_tflops=request.peak_tflops,
                              device_info=info, resume=request.resume, auto_batch=request.auto_batch,
                              on_config_change=lambda changed: write_config(run_dir, changed, data.dir),
                              dist=ranks)
            trainer.run()
            return run_dir
        except StoppedWhilePreparing as err:  # a stop asked for and done: said, and no failure
            if not told:
                ranks.tell_others(err)
            out(ev.Warning(message=str(err)))
            out(ev.Finished(iter=0, reason="stopped", seconds=time.perf_counter() - started))
            return run_dir
        except FwtuiError as err:
            out(ev.Failed(message=str(err), iter=trainer.iter_num if trainer else None))
            if not told:
                ranks.tell_others(err)  # the other ranks wait for the data: they get the failure instead
            raise
        except Exception as err:
            user_error = as_user_error(err, str(cache_root()))  # a folder that refused: path, cause, fix
            if is_out_of_memory(err):  # outside a step (building the model, a sample): still one line
                user_error = FwtuiError(f"out of memory ({err}); `fwtui plan` shows what the run needs: use a "
                                        "smaller model, block_size or batch_size")
            out(ev.Failed(message=str(user_error) if user_error is not err else f"{type(err).__name__}: {err}",
                          iter=trainer.iter_num if trainer else None))
            if not told:
                ranks.tell_others(user_error)
            if user_error is not err:
                raise user_error from None
            raise
        except BaseException as err:  # a third Ctrl-C: still leave a last line in the log
            out(ev.Failed(message="interrupted", iter=trainer.iter_num if trainer else None))
            if not told:
                ranks.tell_others(err)
            raise
        finally:
            if channel is not None:
                channel.stop()
            log.close()


def _config_written_at_start(run_dir: Path, config: RunConfig, data_dir: str | Path,
                             out: ev.EventSink) -> ev.EventSink:
    """On --resume, RUN/config.toml is rewritten only when RunStarted passes, that is once the checkpoint
    has accepted the config: a refused resume (another shape, max_iters already reached) leaves it as it was."""

    def sink(event: ev.Event) -> None:
        try:
            if isinstance(event, ev.RunStarted):
                write_config(run_dir, config, data_dir)
        finally:
            out(event)

    return sink


def _open_control_channel(run_dir: Path, controls: Controls, out: ev.EventSink):
    """RUN/control/: `fwtui attach` and `fwtui serve` steer this run through it (stop, sample, ...)."""
    from trainer.runs.control_channel import ControlChannelServer

    try:
        return ControlChannelServer(run_dir, controls,
                                    on_warning=lambda message: out(ev.Warning(message=message))).start()
    except FwtuiError as err:  # without it the run still trains; other terminals can only watch
        out(ev.Warning(message=f"control channel unavailable: {err}"))
        return None


def _follow_rank0(request: RunRequest, config: RunConfig, sink: ev.EventSink, controls: Controls,
                  ranks: Dist) -> Path:
    """A rank other than 0: it waits for rank 0's run directory and data, then trains its share. It writes
    nothing; of its events only a failure reaches the face, naming the rank."""

    def failures_only(event: ev.Event) -> None:
        if isinstance(event, ev.Failed):
            sink(ev.Failed(message=f"rank {ranks.rank}: {event.message}", iter=event.iter))

    trainer: Trainer | None = None
    try:
        run_dir, data_dir = ranks.hear_rank0("preparing the run directory and the data")
        run_dir = Path(run_dir)
        data = resolve_run_data(data_dir, config, lambda event: None, run_dir)  # prepared: rank 0 made it
        info = detect_device(config.device, request.peak_tflops)
        config = fit_to_device(config, info, request, lambda event: None)  # rank 0's decision: the same figures
        trainer = Trainer(config, data, run_dir, sink=failures_only, controls=controls, device_info=info,
                          peak_tflops=request.peak_tflops, resume=request.resume, auto_batch=request.auto_batch,
                          dist=ranks)
        trainer.run()
        return run_dir
    except Exception as err:
        message = str(err) if isinstance(err, FwtuiError) else f"{type(err).__name__}: {err}"
        failures_only(ev.Failed(message=message, iter=trainer.iter_num if trainer else None))
        raise FwtuiError(f"rank {ranks.rank}: {message}") from None
