"""Bits per byte where the user reads the loss: `fwtui runs`, `view --summary`, the dashboard's log line, the
compare legend, `report` and `fwtui eval`, on a run the test makes (the pattern data's ids are below 256:
GPT-2's one-byte tokens, so each figure must be the loss / ln 2)."""

from __future__ import annotations

import json
import math

import pytest

from fwtui.cli import main as cli_main
from trainer.observe.events import Eval
from trainer.observe.runlog import read_events

LN2 = math.log(2)


@pytest.fixture(scope="module")
def run_dir(pattern_data, tmp_path_factory):
    from tests.tiny_trainer_child import tiny
    from trainer.runs.launch import RunRequest, run_training

    out = tmp_path_factory.mktemp("runs") / "bpb-run"
    run_training(RunRequest(preset=tiny(vocab_size=50304, max_iters=12, eval_interval=6), data=str(pattern_data.dir),
                            out=out), lambda e: None, None)
    return out


def last_eval(run_dir) -> Eval:
    return [e for e in read_events(run_dir / "events.jsonl") if isinstance(e, Eval)][-1]


def test_runs_and_view_summary_show_the_last_val_bpb(run_dir, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # wide enough that no column is left out
    e = last_eval(run_dir)
    assert math.isclose(e.val_bpb, e.val_loss / LN2, rel_tol=1e-6)
    assert cli_main(["runs", str(run_dir.parent)]) == 0
    out = capsys.readouterr().out
    assert "val bpb" in out and f"{e.val_bpb:.4f}" in out
    assert cli_main(["view", str(run_dir), "--summary"]) == 0
    out = capsys.readouterr().out
    assert f"final bits per byte train {e.train_bpb:.4f} · val {e.val_bpb:.4f}" in out


def test_the_dashboard_log_line_and_the_compare_legend_carry_it(run_dir):
    from fwtui.compared_runs import load_compared
    from fwtui.screens.compare import legend_text
    from fwtui.widgets.panels import log_line

    e = last_eval(run_dir)
    assert f"val {e.val_bpb:.3f} bpb" in log_line(e)
    run = load_compared(str(run_dir))
    assert run.final_val_bpb == e.val_bpb
    assert f"val {e.val_bpb:.3f} bpb" in legend_text([run], 0.0).plain


def test_report_has_the_bpb_rows(run_dir, tmp_path, capsys):
    e = last_eval(run_dir)
    assert cli_main(["report", str(run_dir), "--out", str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    assert f"| final bits per byte | train {e.train_bpb:.4f} · val {e.val_bpb:.4f}" in text
    assert f"| {e.val_loss:.4f} | {e.val_bpb:.4f} |" in text


def test_fwtui_eval_measures_loss_and_bpb_on_the_runs_data(run_dir, pattern_data, capsys, tmp_path):
    from tests.test_hellaswag import made_line, write_file

    hellaswag = write_file(tmp_path / "h.jsonl", [json.dumps(made_line(i)) for i in range(4)])
    assert cli_main(["eval", str(run_dir), "--limit", "4", "--hellaswag-file", str(hellaswag), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    loss = d["loss"]
    assert loss["data"] == str(pattern_data.dir)  # the run's own data, from its config.toml
    assert math.isclose(loss["val_bpb"], loss["val_loss"] / LN2, rel_tol=1e-6)
    assert math.isclose(loss["val_loss"], last_eval(run_dir).val_loss, rel_tol=1e-4)  # the run's windows, weights
    import shutil

    alone = shutil.copy(run_dir / "ckpt.pt", tmp_path / "ckpt.pt")
    assert cli_main(["eval", str(alone), "--limit", "4", "--hellaswag-file", str(hellaswag)]) == 0
    out = capsys.readouterr().out
    assert "val loss  unknown (no prepared data" in out  # a ckpt.pt away from its run names no data
    assert cli_main(["eval", str(alone), "--limit", "4", "--hellaswag-file", str(hellaswag),
                     "--data", str(pattern_data.dir)]) == 0
    assert f"{loss['val_bpb']:.4f} bits per byte" in capsys.readouterr().out
