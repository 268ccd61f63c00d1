"""`fwtui report`: report.md's figures and eval table against the scripted run, loss.png as a PNG of the
right size (only that needs matplotlib), a nanoGPT log, and one line when matplotlib is absent."""

from __future__ import annotations

import dataclasses
import struct
import sys

import pytest

from fwtui.cli import main as cli_main
from fwtui.commands.report import NO_MATPLOTLIB, PNG_SIZE
from tests.dashboard_script import T0, eval_at, run_started, step
from tests.test_nanogpt_log import HEADER, LOOP
from trainer.observe import events as ev
from trainer.observe.runlog import EventLogWriter


def write_run(run_dir) -> None:
    writer = EventLogWriter(run_dir)
    writer(dataclasses.replace(run_started(max_iters=500), run_dir=str(run_dir)))
    for i in range(0, 501, 10):
        writer(step(i))
        if i and i % 250 == 0:
            writer(with_bpb(eval_at(i)))
            writer(ev.CheckpointSaved(time=T0 + i * 9.34 + 2, iter=i, path=f"{run_dir}/ckpt.pt", bytes=10**9,
                                      seconds=1.0, reason="eval"))
    hella = getattr(ev, "HellaSwag", None)
    if hella is not None:
        writer(hella(time=T0 + 5000, iter=500, acc=0.27, acc_norm=0.2812, count=10042, seconds=30.0))
    writer(ev.Finished(time=T0 + 5001, iter=500, reason="completed", seconds=4700.0,
                       final_train_loss=eval_at(500).train_loss, final_val_loss=eval_at(500).val_loss))
    writer.close()


def with_bpb(e: ev.Eval) -> ev.Eval:
    """The eval with bits per byte as a run of GPT-2 tokens at 4.5 bytes a token would log it."""
    return dataclasses.replace(e, train_bpb=e.train_loss / 0.6931471805599453 / 4.5,
                               val_bpb=e.val_loss / 0.6931471805599453 / 4.5)


def png_size(path) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk (bytes 16-24), after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_the_report_holds_the_runs_figures_and_eval_table(tmp_path, capsys):
    run = tmp_path / "fineweb-000"
    run.mkdir()
    write_run(run)
    assert cli_main(["report", str(run)]) == 0
    text = (run / "report.md").read_text()
    assert text.startswith("# fwtui run report: fineweb-000\n")
    assert "| preset | rtx4070-12gb |" in text
    assert "| parameters | 63.52M (nanoGPT count) · 64.31M with position embeddings |" in text
    assert f"| tokens seen | {500 * 524_288:,} (" in text
    assert "| iterations | 0 to 500 (501 iterations) of max_iters 500, completed |" in text
    assert f"| final val loss | {eval_at(500).val_loss:.4f} |" in text
    assert f"| final train loss | {eval_at(500).train_loss:.4f} |" in text
    mfus = [step(i).mfu for i in range(0, 501, 10)]
    assert f"| MFU | {sum(mfus) / len(mfus) * 100:.2f}% average of" in text
    table = text.split("## Evaluations", 1)[1]
    e250, e500 = with_bpb(eval_at(250)), with_bpb(eval_at(500))
    assert (f"| 250 | {e250.train_loss:.4f} | {e250.val_loss:.4f} | {e250.val_bpb:.4f} | best val so far; "
            "checkpoint (eval) |") in table
    assert (f"| final bits per byte | train {e500.train_bpb:.4f} · val {e500.val_bpb:.4f} (summed loss / ln 2 / "
            "UTF-8 bytes of the evaluated text) |") in text
    hella = "; HellaSwag 0.2812" if hasattr(ev, "HellaSwag") else ""
    assert (f"| 500 | {e500.train_loss:.4f} | {e500.val_loss:.4f} | {e500.val_bpb:.4f} | best val so far; "
            f"checkpoint (eval){hella} |") in table
    if hella:
        assert "| HellaSwag | acc_norm 0.2812 · acc 0.2700 over 10,042 examples at iter 500" in text
    assert "![loss curves](loss.png)" in text or NO_MATPLOTLIB in text
    assert 'name = "rtx4070-12gb"' in text.split("## Config", 1)[1]


def test_loss_png_opens_as_an_image_of_the_right_size(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    run = tmp_path / "run"
    run.mkdir()
    write_run(run)
    out = tmp_path / "shared"
    assert cli_main(["report", str(run), "--out", str(out)]) == 0
    assert png_size(out / "loss.png") == PNG_SIZE
    assert (out / "report.md").is_file()
    assert f"wrote {out / 'loss.png'}" in capsys.readouterr().out


def test_without_matplotlib_report_md_is_still_written_and_one_line_says_why(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    run = tmp_path / "run"
    run.mkdir()
    write_run(run)
    assert cli_main(["report", str(run)]) == 0
    assert NO_MATPLOTLIB in capsys.readouterr().out
    assert not (run / "loss.png").exists()
    assert f"_{NO_MATPLOTLIB}_" in (run / "report.md").read_text()


def test_a_nanogpt_log_reports_too(tmp_path, capsys):
    log = tmp_path / "train.log"
    log.write_text(HEADER + LOOP)
    assert cli_main(["report", str(log)]) == 0
    text = (tmp_path / "train-report" / "report.md").read_text()
    assert "| source | nanoGPT log |" in text
    assert "| final val loss | 8.9500 |" in text and "| last iteration loss | 8.5000 |" in text
    assert "| 5 | 8.9000 | 8.9500 | unknown | best val so far; checkpoint" in text  # a nanoGPT log has no bytes


def test_a_missing_run_is_one_line(tmp_path, capsys):
    assert cli_main(["report", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
