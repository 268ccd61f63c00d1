"""What the command line says in the corner cases a newcomer hit (issue 20's smaller points): help with the
defaults, a missing run named as such, a report and a printer that agree with the run about where it ended,
and sample text printed as it was written."""

from __future__ import annotations

import dataclasses
import io

import pytest

from fwtui.cli import main as cli_main
from fwtui.headless import HeadlessPrinter
from tests.dashboard_script import T0, eval_at, run_started, step
from trainer.observe import events as ev
from trainer.observe.runlog import EventLogWriter


def test_sample_help_shows_every_default(capsys) -> None:
    with pytest.raises(SystemExit):
        cli_main(["sample", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps at the terminal's width
    for default in ("(default 200)", "(default 0.8)", "(default 1)", "(default 1337)", "(default auto",
                    "(default: a newline"):
        assert default in text
    assert "top_k" not in text and "--top-k K sample among the K likeliest tokens only (default 200)" in text


@pytest.mark.parametrize("command", ["report", "view"])
def test_a_missing_run_names_run_directories(tmp_path, capsys, command) -> None:
    args = [command, str(tmp_path / "missing")] + (["--summary"] if command == "view" else [])
    assert cli_main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no such run directory or log file" in err and "fwtui runs" in err
    (tmp_path / "empty").mkdir()
    assert cli_main([command, str(tmp_path / "empty")] + args[2:]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no events.jsonl" in err and "run directory" in err


def stopped_at_89(run_dir) -> None:
    """A run logged every 10 iterations (0..80) and stopped at the boundary of iter 89 (0..88 ran)."""
    writer = EventLogWriter(run_dir)
    writer(dataclasses.replace(run_started(max_iters=200), run_dir=str(run_dir)))
    for i in range(0, 81, 10):
        writer(step(i))
    writer(ev.Finished(time=T0 + 900, iter=89, reason="stopped", seconds=830.0))
    writer.close()


def test_the_report_runs_to_where_the_run_stopped_not_to_its_last_log_line(tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    stopped_at_89(run)
    assert cli_main(["report", str(run)]) == 0
    text = (run / "report.md").read_text()
    assert ("| iterations | 0 to 88 (89 iterations; logged every 10, the last at 80) of max_iters 200, "
            "stopped there (it continues at iter 89) |") in text
    assert cli_main(["view", str(run), "--summary"]) == 0


def printed(events) -> list[str]:
    out = io.StringIO()
    printer = HeadlessPrinter(out)
    for e in events:
        printer(e)
    return out.getvalue().splitlines()


def test_the_headless_sample_line_keeps_backslashes_and_shows_line_breaks() -> None:
    code = 'path = "C:\\\\temp"\nprint(r"\\d+")'  # as written in a file: C:\\temp and \d+
    [line] = printed([ev.Sample(time=T0, iter=20, prompt="def f():\n", text=code, seconds=0.25)])
    assert line == ('sample 20 (training paused 0.25 s): “def f():⏎” → “path = "C:\\\\temp"⏎print(r"\\d+")”')
    assert "\\\\\\\\" not in line  # repr() would have doubled the two backslashes to four


def test_a_stop_between_evaluations_says_which_iteration_its_val_loss_is_from() -> None:
    e0 = eval_at(0)
    stop = ev.Finished(time=T0 + 60, iter=16, reason="stopped", seconds=60.0, final_train_loss=e0.train_loss,
                       final_val_loss=e0.val_loss)
    last = printed([run_started(max_iters=100), e0, step(10), stop])[-1]
    assert last == f"stopped at iter 16 after 1m00s · val loss {e0.val_loss:.4f} (last evaluated at iter 0)"
    e100 = eval_at(100)
    done = ev.Finished(time=T0 + 99, iter=100, reason="completed", seconds=99.0, final_val_loss=e100.val_loss)
    assert printed([e100, done])[-1].endswith(f"val loss {e100.val_loss:.4f}")  # evaluated right there
