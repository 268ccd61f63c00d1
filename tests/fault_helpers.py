"""Helpers shared by tests/test_faults_misc.py and tests/test_faults_security.py (a plain module, not a
test file): the narrowed cpu-tiny CLI settings, an in-process Trainer run with its events recorded, and
the headless CLI run in-process with its one-line error checked."""

from __future__ import annotations

from pathlib import Path

from fwtui.cli import main as cli_main
from tests.tiny_trainer_child import tiny
from trainer.train.loop import Trainer

# cpu-tiny narrowed (one 16-wide layer: steps of a few ms on the full GPT-2 vocabulary), for the CLI.
CLI_SETS = ["max_iters=12", "lr_decay_iters=12", "warmup_iters=2", "eval_interval=4", "eval_iters=1",
            "log_interval=1", "batch_size=4", "block_size=32", "n_layer=1", "n_embd=16"]


class Recorder(list):
    def of(self, cls):
        return [e for e in self if isinstance(e, cls)]


def train(data, run_dir, config=None, **kw):
    rec = Recorder()
    trainer = Trainer(config or tiny(), data, run_dir, sink=rec.append, **kw)
    return rec, trainer, trainer.run()


def cli(capsys, *args: str) -> tuple[int, str, str]:
    rc = cli_main(list(args))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def one_error_line(err: str) -> str:
    assert err.startswith("fwtui: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def train_args(run: Path, data: Path, *sets: str) -> list[str]:
    args = ["train", "--preset", "cpu-tiny", "--data", str(data), "--out", str(run)]
    for item in (*CLI_SETS, *sets):
        args += ["--set", item]
    return args
