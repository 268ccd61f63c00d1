"""nanoGPT stdout logs (REFERENCE.md section 7) read into events and a summary; `fwtui view --summary`."""

from __future__ import annotations

import math

import pytest

from fwtui.cli import main
from trainer.errors import ConfigError
from trainer.observe.events import CheckpointSaved, Eval, Finished, RunStarted, Step
from trainer.runs.nanogpt_log import NANOGPT_PEAK_FLOPS, log_to_events, nanogpt_lr, parse_nanogpt_log, run_config_of
from trainer.runs.summary import rescaled_mfu, summarize_nanogpt

HEADER = """\
Overriding config with config/train_fineweb.py:
# config for training GPT-2 (124M) on FineWeb
# launch as: python train.py config/train_fineweb.py

wandb_log = False # override via command line if you like
out_dir = 'out-fineweb'
batch_size = 16
block_size = 1024
gradient_accumulation_steps = 4 * 8
max_iters = 7
eval_interval = 5
Overriding: compile = True
tokens per iteration will be: 524,288
found vocab_size = 50304 (inside data/fineweb/meta.pkl)
Initializing a new model from scratch
number of parameters: 123.59M
num decayed parameter tensors: 50, with 124,354,560 parameters
compiling the model... (takes a ~minute)
"""

# Iteration 0 carries compile and the step-0 eval; iterations 1-4 print mfu -100.00% (nanoGPT measures
# from its 5th); iteration 5 carries the eval and the checkpoint: 29.3 s against a plain 9.3 s.
LOOP = """\
step 0: train loss 10.9876, val loss 10.9881
iter 0: loss 10.9902, time 45012.50ms, mfu -100.00%
iter 1: loss 10.2000, time 9300.00ms, mfu -100.00%
iter 2: loss 9.8000, time 9300.00ms, mfu -100.00%
iter 3: loss 9.5000, time 9300.00ms, mfu -100.00%
iter 4: loss 9.2000, time 9300.00ms, mfu -100.00%
step 5: train loss 8.9000, val loss 8.9500
saving checkpoint to out-fineweb
iter 5: loss 8.9100, time 29300.00ms, mfu 15.00%
iter 6: loss 8.7000, time 9400.00ms, mfu 15.20%
iter 7: loss 8.5000, time 9200.00ms, mfu 15.40%
"""


def mangle(text: str) -> str:
    """The same log as a real terminal capture: CRLF, ANSI colours, stray characters, blank lines, and a
    last line cut off mid-write."""
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        if line.startswith("iter 2:"):
            line = "\x1b[32m" + line + "\x1b[0m"
        elif line.startswith("iter 3:"):
            line = "33" + line  # the stray characters our users see (`33iter 7800:`)
        elif line.startswith("iter 6:"):
            out.append("")
        out.append(line)
    return "\r\n".join(out) + "\r\niter 8: loss 8.40"


@pytest.mark.parametrize("text", [HEADER + LOOP, mangle(HEADER + LOOP)], ids=["clean", "mangled"])
def test_parse_shapes(text: str) -> None:
    log = parse_nanogpt_log(text)
    assert [it.iter for it in log.iters] == list(range(8))
    assert log.config["gradient_accumulation_steps"] == 32  # `4 * 8` evaluated, nothing executed
    assert log.config["out_dir"] == "out-fineweb" and log.config["compile"] is True
    assert log.config["wandb_log"] is False  # the trailing comment is dropped
    assert log.params_millions == 123.59 and log.tokens_per_iter == 524_288
    assert [it.mfu_percent for it in log.iters[:5]] == [None] * 5  # -100.00% means not measured
    assert log.iters[5].after_eval and log.iters[5].after_checkpoint and not log.iters[6].after_eval
    assert [(e.iter, e.val_loss, e.checkpoint_to) for e in log.evals] == [(0, 10.9881, None),
                                                                          (5, 8.95, "out-fineweb")]
    if "\r\n" in text:
        assert log.malformed_lines == ["iter 8: loss 8.40"]  # the truncated last line is skipped, counted
        assert log.iters[2].loss == 9.8 and log.iters[3].loss == 9.5  # ANSI and stray prefix tolerated


def test_summary_by_hand() -> None:
    s = summarize_nanogpt(parse_nanogpt_log(mangle(HEADER + LOOP)))
    assert (s.iterations, s.logged_iterations, s.log_interval, s.last_iter) == (8, 8, 1, 7)
    assert s.total_exact and s.total_seconds == pytest.approx(45.0125 + 4 * 9.3 + 29.3 + 9.4 + 9.2)
    assert s.first_iter_seconds == pytest.approx(45.0125)
    assert s.plain_iter_seconds == pytest.approx((4 * 9.3 + 9.4 + 9.2) / 6)  # iterations 1-4, 6, 7
    assert s.eval_lost_seconds == pytest.approx(29.3 - 9.3)
    assert (s.evals, s.checkpoints) == (2, 1)
    assert (s.final_train_loss, s.final_val_loss, s.last_loss) == (8.9, 8.95, 8.5)
    assert s.mfu_avg == pytest.approx(0.152) and s.mfu_samples == 3
    assert s.malformed_lines == 1
    mfu, label, peak = rescaled_mfu(s, "NVIDIA GeForce RTX 4070")
    assert label == "RTX 4070" and mfu == pytest.approx(0.152 * 312 / 58.3)  # same FLOP/s, real peak
    with pytest.raises(ConfigError, match="not in the peak table"):
        rescaled_mfu(s, "Voodoo 5")


def test_sparse_log_interval_estimates_the_total() -> None:
    text = "\n".join(f"iter {i}: loss {5 - i / 100:.4f}, time 1000.00ms, mfu 20.00%" for i in range(0, 60, 10))
    text = text.replace("iter 30: loss 4.7000, time 1000.00ms",
                        "step 30: train loss 4.7000, val loss 4.8000\niter 30: loss 4.7000, time 3000.00ms")
    s = summarize_nanogpt(parse_nanogpt_log(text))
    assert s.log_interval == 10 and not s.total_exact
    assert s.iterations == 51  # iterations 0..50, one line every 10
    # 0: 1 s; 10, 20, 40, 50: 10 x 1 s each; 30: the eval iteration 3 s + 9 unlogged at the plain 1 s.
    assert s.total_seconds == pytest.approx(1 + 4 * 10 + 3 + 9)
    assert s.eval_lost_seconds == pytest.approx(2.0)


def test_events_for_the_dashboard() -> None:
    log = parse_nanogpt_log(HEADER + LOOP)
    events = log_to_events(log, start_time=1000.0, name="fineweb")
    started = events[0]
    assert isinstance(started, RunStarted) and started.config["name"] == "fineweb"
    assert started.params == 123_590_000 and started.tokens_per_iter == 524_288
    assert started.peak_flops == NANOGPT_PEAK_FLOPS and "312" in started.peak_flops_source
    steps = [e for e in events if isinstance(e, Step)]
    assert [s.mfu for s in steps[:5]] == [None] * 5 and steps[5].mfu == pytest.approx(0.15)
    assert steps[5].step_seconds == pytest.approx(29.3)
    assert steps[-1].elapsed_seconds == pytest.approx(130.1125)
    assert steps[-1].time == pytest.approx(1130.1125)  # synthesized from cumulative iteration times
    assert steps[-1].tokens_seen == 8 * 524_288
    assert all(a.time <= b.time for a, b in zip(events, events[1:]))
    evals = [e for e in events if isinstance(e, Eval)]
    assert [(e.iter, e.seconds) for e in evals] == [(0, 0.0), (5, pytest.approx(20.0))]
    assert [c.path for c in events if isinstance(c, CheckpointSaved)] == ["out-fineweb/ckpt.pt"]
    assert isinstance(events[-1], Finished) and events[-1].final_val_loss == 8.95  # max_iters 7 reached
    # with the card's real peak, the same measurement as a fraction of that peak
    rescaled = log_to_events(log, peak_flops=58.3e12, peak_source="table")
    assert [s.mfu for s in rescaled if isinstance(s, Step)][5] == pytest.approx(0.15 * 312 / 58.3)


def test_learning_rate_follows_nanogpt_schedule() -> None:
    config = run_config_of(parse_nanogpt_log("learning_rate = 1e-3\nwarmup_iters = 10\nlr_decay_iters = 110\n"
                                             "min_lr = 1e-4\nmax_iters = 5\n"))
    assert config.max_iters == 5  # not validated: nanoGPT ran it
    assert nanogpt_lr(config, 0) == pytest.approx(1e-3 / 11)
    assert nanogpt_lr(config, 60) == pytest.approx(1e-4 + 0.5 * 9e-4)
    assert nanogpt_lr(config, 500) == pytest.approx(1e-4)
    defaults = run_config_of(parse_nanogpt_log(""))
    assert (defaults.lr_decay_iters, defaults.min_lr) == (600000, 6e-5)  # train.py's, not derived


def test_odd_values_do_not_break_parsing() -> None:
    log = parse_nanogpt_log("iter 3: loss nan, time 12.00ms, mfu 1.00%\n"
                            "dtype = 'bfloat16'\n"  # after the loop began: not config
                            "iter 4: loss 3.0000, time 12.50ms\n"  # an older nanoGPT without mfu
                            "some_expr = __import__('os').system('echo no')\n")
    assert math.isnan(log.iters[0].loss) and log.iters[1].mfu_percent is None
    assert "dtype" not in log.config and "some_expr" not in log.config


def test_view_summary_cli(tmp_path, capsys) -> None:
    path = tmp_path / "train.log"
    path.write_bytes(mangle(HEADER + LOOP).encode())
    assert main(["view", str(path), "--summary", "--gpu", "RTX 4070"]) == 0
    out = capsys.readouterr().out
    assert "iterations" in out and "8" in out
    assert "130.1 s" in out  # total
    assert "20.0 s" in out  # lost to evaluation and checkpoint iterations
    assert "8.9000" in out and "8.9500" in out  # final train and val
    assert "15.20%" in out  # average printed MFU, against 312 TFLOP/s
    assert "81.34%" in out and "RTX 4070" in out  # rescaled to the card's 58.3 TFLOP/s
    assert "1 line" in out  # the truncated last line is reported, not silently dropped


def test_view_summary_errors(tmp_path, capsys) -> None:
    path = tmp_path / "train.log"
    path.write_text(LOOP)
    assert main(["view", str(path), "--summary", "--gpu", "Voodoo 5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Voodoo 5" in err and "peak table" in err
    empty = tmp_path / "empty.log"
    empty.write_text("hello\nworld\n")
    assert main(["view", str(empty), "--summary"]) == 2
    assert "no nanoGPT `iter` lines" in capsys.readouterr().err
    assert main(["view", str(tmp_path / "missing.log"), "--summary"]) == 2
    assert "no such run directory or log file" in capsys.readouterr().err


def test_view_summary_health_of_a_diverged_nanogpt_log(tmp_path, capsys) -> None:
    path = tmp_path / "diverged.log"
    path.write_text(HEADER + LOOP + "iter 8: loss nan, time 9300.00ms, mfu 15.30%\n")
    assert main(["view", str(path), "--summary"]) == 0
    out = capsys.readouterr().out
    assert "health              1 finding:\n  - training loss is nan at iter 8; last finite at iter 7: the run " \
           "diverged" in out
    path.write_text(HEADER + LOOP)
    assert main(["view", str(path), "--summary"]) == 0
    assert "health              ok" in capsys.readouterr().out
