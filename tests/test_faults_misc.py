"""Out of memory, NaN/inf, a full disk and a failing torch.compile (issue 7, items 4, 5, 6 and 7), each where
tests/test_loop.py, test_checkpoint.py and test_ingest.py stop: through the headless CLI (one line, exit 2,
nothing lost) and at the corners those tests do not reach. The security promises (item 9) are in
tests/test_faults_security.py.
"""

from __future__ import annotations

import errno
import math
import os
import types

import pytest
import torch

from tests.conftest import synthetic_texts, write_fineweb_parquet
from tests.fault_helpers import CLI_SETS, Recorder, cli, one_error_line, train, train_args
from tests.tiny_trainer_child import tiny
from trainer.train import checkpoint as ck
from trainer.observe import events as ev
from trainer.data import prepared_writer
from trainer.train.checkpoint import load_checkpoint
from trainer.data.dataset import META_NAME, TRAIN_NAME, open_prepared
from trainer.errors import DataError, FwtuiError
from trainer.data.ingest import prepare
from trainer.train.bad_steps import MAX_BAD_STEPS, TrainingDiverged
from trainer.train.loop import Trainer
from trainer.model.gpt import GPT
from trainer.observe.runlog import read_events

@pytest.fixture(scope="module")
def data(pattern_data):
    """The tiny model's data: tests/conftest.py write_pattern_dataset."""
    return pattern_data


# --- 4. out of memory ----------------------------------------------------------------------------------

def fake_oom(monkeypatch, on_calls, where="_step"):
    """Raise CUDA's out-of-memory error from Trainer.<where> on the given call numbers (1-based)."""
    original = getattr(Trainer, where)
    calls = {"n": 0}

    def wrapped(self, *args):
        calls["n"] += 1
        if calls["n"] in on_calls:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, *args)

    monkeypatch.setattr(Trainer, where, wrapped)


def test_auto_batch_halves_again_on_a_second_oom_and_the_run_resumes_with_it(data, tmp_path, monkeypatch):
    from trainer.runs.launch import RunRequest, run_training

    fake_oom(monkeypatch, {3, 6})
    run = tmp_path / "run"
    seen = Recorder()
    run_training(RunRequest("cpu-tiny", data.dir, out=run, overrides=CLI_SETS + ["max_iters=10", "batch_size=8"],
                            auto_batch=True), seen.append)
    warnings = [w.message for w in seen.of(ev.Warning)]
    assert any("out of memory at micro-batch 8: continuing with batch_size 4 x 2" in m for m in warnings)
    assert any("out of memory at micro-batch 4: continuing with batch_size 2 x 4" in m for m in warnings)
    assert [s.iter for s in seen.of(ev.Step)] == list(range(10))  # no step lost or repeated
    assert seen[-1].kind == "finished" and seen[-1].reason == "completed"
    saved = (run / "config.toml").read_text()  # what a --resume will train with
    assert "batch_size = 2\n" in saved and "gradient_accumulation_steps = 4\n" in saved
    assert load_checkpoint(run)["config"]["batch_size"] == 2
    monkeypatch.undo()
    seen = Recorder()
    run_training(RunRequest(None, None, out=run, resume=True, overrides=["max_iters=12"]), seen.append)
    started = seen.of(ev.RunStarted)[0]
    assert started.config["batch_size"] == 2 and started.tokens_per_iter == 8 * 32 and started.start_iter == 10


def test_oom_at_micro_batch_1_says_what_to_shrink(data, tmp_path, monkeypatch):
    fake_oom(monkeypatch, {2})
    with pytest.raises(FwtuiError, match=r"out of memory .* micro-batch 1 .*use a smaller model or block_size"):
        train(data, tmp_path, tiny(batch_size=1, max_iters=5), auto_batch=True)


def test_oom_headless_is_one_line_with_the_batch_to_try_and_the_checkpoint_kept(data, tmp_path, monkeypatch,
                                                                                 capsys):
    fake_oom(monkeypatch, {7})  # after the checkpoint at iter 4
    run = tmp_path / "run"
    rc, _, err = cli(capsys, *train_args(run, data.dir))
    assert rc == 2
    one_error_line(err)
    assert "out of memory" in err and "--set batch_size=2 --set gradient_accumulation_steps=2" in err
    assert "--auto-batch" in err
    assert load_checkpoint(run)["iter_num"] == 4
    assert read_events(run)[-1].kind == "failed"


def test_oom_during_evaluation_is_handled_like_one_in_a_step(data, tmp_path, monkeypatch):
    fake_oom(monkeypatch, {2}, where="_evaluate")  # the evaluation at iter 10
    with pytest.raises(FwtuiError, match="out of memory .*--auto-batch"):
        train(data, tmp_path / "plain", tiny(max_iters=20))
    monkeypatch.undo()
    fake_oom(monkeypatch, {2}, where="_evaluate")
    rec, trainer, reason = train(data, tmp_path / "auto", tiny(max_iters=20), auto_batch=True)
    assert reason == "completed" and trainer.config.batch_size == 2
    assert [e.iter for e in rec.of(ev.Eval)] == [0, 10, 20]


# --- 5. NaN / inf -------------------------------------------------------------------------------------

def test_an_inf_gradient_norm_with_a_finite_loss_skips_the_step(data, tmp_path, monkeypatch):
    real = torch.nn.utils.clip_grad_norm_
    calls = {"n": 0}

    def clip(params, max_norm, *args, **kwargs):
        calls["n"] += 1
        norm = real(params, max_norm, *args, **kwargs)
        return torch.full_like(norm, math.inf) if calls["n"] == 4 else norm

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    before = {}

    class Watch(Recorder):
        def append(self, event):
            super().append(event)
            if isinstance(event, ev.Step) and event.iter == 2:
                before.update({k: v.clone() for k, v in trainer_ref[0].raw_model.state_dict().items()})
            if isinstance(event, ev.Warning):  # step 3 was skipped: the weights are those after step 2
                after = trainer_ref[0].raw_model.state_dict()
                assert all(torch.equal(before[k], after[k]) for k in before)

    rec = Watch()
    trainer_ref = [Trainer(tiny(max_iters=8), data, tmp_path, sink=rec.append)]
    assert trainer_ref[0].run() == "completed"
    warnings = [w.message for w in rec.of(ev.Warning)]
    assert len(warnings) == 1 and "iter 3" in warnings[0] and "gradient norm inf" in warnings[0]


def nan_forward(monkeypatch, bad):
    original = GPT.forward
    calls = {"n": 0}

    def forward(self, idx, targets=None):
        logits, loss = original(self, idx, targets)
        if self.training and targets is not None:
            if bad(calls["n"]):
                loss = loss * float("nan")
            calls["n"] += 1
        return logits, loss

    monkeypatch.setattr(GPT, "forward", forward)


def test_nan_k_in_a_row_headless_stops_with_one_line_and_resume_continues_from_the_last_good(
        data, tmp_path, monkeypatch, capsys):
    nan_forward(monkeypatch, lambda n: n >= 6)  # steps 6, 7, ... never finite
    run = tmp_path / "run"
    rc, _, err = cli(capsys, *train_args(run, data.dir))
    assert rc == 2
    one_error_line(err)
    # No checkpoint is written from the first bad step (6) on: the one at 4 is the last good one, kept.
    assert f"not finite for {MAX_BAD_STEPS} steps in a row" in err and "(iter 4) is the last good state" in err
    assert "--resume" in err and "learning_rate" in err
    events = read_events(run)
    assert len([e for e in events if isinstance(e, ev.Warning) and "step skipped" in e.message]) == MAX_BAD_STEPS
    ckpt = load_checkpoint(run)
    assert ckpt["iter_num"] == 4 and all(torch.isfinite(t).all() for t in ckpt["model"].values())
    monkeypatch.undo()
    rc, out, err = cli(capsys, "train", "--out", str(run), "--resume")
    assert rc == 0, err
    assert "resuming at iter 4" in out and "completed at iter 12" in out


def test_weights_gone_nan_are_never_checkpointed_over_the_last_good_state(data, tmp_path, monkeypatch):
    """A step that leaves NaN weights behind a finite loss (an fp16/bf16 overflow in the update) makes
    every later loss NaN: the evaluation at 16 is NaN too, and must not replace the good checkpoint at 12."""
    original = torch.optim.AdamW.step
    calls = {"n": 0}

    def step(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 14:
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(float("nan"))
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    rec = Recorder()
    with pytest.raises(TrainingDiverged, match=r"\(iter 12\) is the last good state"):
        Trainer(tiny(max_iters=40, eval_interval=4), data, tmp_path, sink=rec.append).run()  # NaN from step 14
    assert "checkpoint at iter 16 not saved: the model's weights hold NaN or inf; ckpt.pt (iter 12) is kept" in \
        [w.message for w in rec.of(ev.Warning)]
    ckpt = load_checkpoint(tmp_path)
    assert ckpt["iter_num"] == 12 and all(torch.isfinite(t).all() for t in ckpt["model"].values())


# --- 6. disk full --------------------------------------------------------------------------------------

def test_disk_full_while_writing_a_checkpoint_warns_keeps_the_old_one_and_retries(data, tmp_path, monkeypatch):
    real_save = ck.torch.save
    calls = {"n": 0}

    def save(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the save at iter 20: some bytes reach the disk, then it is full
            f.write(b"PK\x03\x04" + b"\0" * 4096)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(ck.torch, "save", save)
    checked = []

    class Watch(Recorder):
        def append(self, event):
            super().append(event)
            if isinstance(event, ev.Warning):  # at the moment of the warning: the old checkpoint, whole
                checked.append(load_checkpoint(tmp_path)["iter_num"])
                assert sorted(p.name for p in tmp_path.glob("ckpt*")) == ["ckpt.pt"]

    rec = Watch()
    assert Trainer(tiny(max_iters=40), data, tmp_path, sink=rec.append).run() == "completed"
    warnings = [w.message for w in rec.of(ev.Warning)]
    assert len(warnings) == 1 and "no space left on device in " in warnings[0] and "retrying at the next interval" in \
        warnings[0] and "previous checkpoint is kept" in warnings[0]
    assert checked == [10]
    assert [c.iter for c in rec.of(ev.CheckpointSaved)] == [10, 30, 40]
    assert load_checkpoint(tmp_path)["iter_num"] == 40


def test_disk_full_at_the_stop_checkpoint_is_one_line_and_the_old_checkpoint_stays(data, tmp_path, monkeypatch,
                                                                                  capsys):
    import signal

    real_save = ck.torch.save

    def save(obj, f, *args, **kwargs):
        if obj.get("fwtui", {}).get("reason") == "stop":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(ck.torch, "save", save)
    original = Trainer._emit_step

    def emit_step(self, it, *args):
        original(self, it, *args)
        if it == 5:
            os.kill(os.getpid(), signal.SIGTERM)  # as `kill PID` from another terminal

    monkeypatch.setattr(Trainer, "_emit_step", emit_step)
    run = tmp_path / "run"
    rc, _, err = cli(capsys, *train_args(run, data.dir))
    assert rc == 2
    one_error_line(err)
    assert "no space left on device in " in err and "previous checkpoint is kept" in err
    assert load_checkpoint(run)["iter_num"] == 4 and not list(run.glob(f"*{ck.TEMP_MARK}*"))


def test_disk_full_under_events_jsonl_is_one_warning_line_and_the_run_completes(data, tmp_path, monkeypatch,
                                                                                capsys):
    from trainer.observe import runlog

    monkeypatch.setattr(runlog, "RETRY_SECONDS", 0.0)  # try the disk again at the next event
    full = {"on": False}
    real_write = os.write

    def write(fd, payload):
        if full["on"]:
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                target = ""
            if target.endswith(runlog.EVENTS_FILE):
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, payload)

    monkeypatch.setattr(os, "write", write)
    original = Trainer._emit_step

    def emit_step(self, it, *args):
        full["on"] = 5 <= it < 9  # the disk is full from step 5 until someone frees space before step 9
        original(self, it, *args)

    monkeypatch.setattr(Trainer, "_emit_step", emit_step)
    run = tmp_path / "run"
    rc, out, err = cli(capsys, *train_args(run, data.dir))
    assert rc == 0, err
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, out  # one for the failure episode, one for the recovery: not one a step
    assert "events.jsonl is not being written (No space left on device, errno ENOSPC)" in warnings[0]
    assert "will not see this run past iter 5; free disk space" in warnings[0]
    assert "is written again from iter 9; the events from iter 5 until then are missing" in warnings[1]
    assert "completed at iter 12" in out
    logged = read_events(run)
    assert [e.iter for e in logged if isinstance(e, ev.Step)] == [0, 1, 2, 3, 4, 9, 10, 11]
    assert any(isinstance(e, ev.Warning) and "is written again" in e.message for e in logged)
    assert logged[-1].kind == "finished"


class FullDisk:
    """A file whose disk fills up after `room` bytes: writes up to it, then ENOSPC."""

    def __init__(self, f, room: int) -> None:
        self.f, self.room = f, room

    def write(self, data) -> int:
        data = memoryview(data).cast("B")
        if len(data) > self.room:
            self.f.write(data[:self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)


def test_disk_full_during_a_prepare_leaves_nothing_complete_looking_then_resumes(tmp_path, monkeypatch, capsys):
    parquet = write_fineweb_parquet(tmp_path / "docs.parquet", synthetic_texts(200), row_group_size=50)
    straight = prepare([parquet], tmp_path / "straight", val_fraction=0.05)
    real_start = prepared_writer.PreparedWriter.start

    def start(self):
        resumed = real_start(self)
        self._files[TRAIN_NAME] = FullDisk(self._files[TRAIN_NAME], room=20_000)  # in row group 2
        return resumed

    monkeypatch.setattr(prepared_writer.PreparedWriter, "start", start)
    out = tmp_path / "out"
    rc, _, err = cli(capsys, "prepare", str(parquet), "--out", str(out), "--val-fraction", "0.05")
    assert rc == 2
    one_error_line(err)
    assert "disk filled up" in err and "free some space" in err
    assert not {META_NAME, "train.bin", "val.bin"} & {p.name for p in out.iterdir()}
    with pytest.raises(DataError, match="not a prepared dataset"):
        open_prepared(out)
    monkeypatch.undo()
    again = prepare([parquet], out, val_fraction=0.05)  # space freed: the same bytes as a straight prepare
    assert again.train_path.read_bytes() == straight.train_path.read_bytes()
    assert again.val_path.read_bytes() == straight.val_path.read_bytes()


def test_free_space_is_checked_before_a_prepare_starts_headless(tmp_path, monkeypatch, capsys):
    parquet = write_fineweb_parquet(tmp_path / "docs.parquet", synthetic_texts(50), row_group_size=50)
    monkeypatch.setattr(prepared_writer.shutil, "disk_usage", lambda path: types.SimpleNamespace(free=1000))
    rc, _, err = cli(capsys, "prepare", str(parquet), "--out", str(tmp_path / "out"))
    assert rc == 2
    one_error_line(err)
    assert "0.0 MB free" in err and "tokens" in err and "--out DIR on a larger disk" in err
    assert not (tmp_path / "out").exists()


# --- 7. torch.compile ----------------------------------------------------------------------------------

def test_torch_compile_raising_when_called_falls_back_to_eager_with_a_warning(data, tmp_path, monkeypatch):
    def broken(module, **kwargs):
        raise RuntimeError("no C compiler found")

    monkeypatch.setattr(torch, "compile", broken)
    rec, trainer, reason = train(data, tmp_path, tiny(compile=True, max_iters=4))
    assert reason == "completed" and trainer.compiled is False
    assert rec.of(ev.RunStarted)[0].compiled is False
    assert any("torch.compile failed (RuntimeError: no C compiler found); running eager" in w.message
               for w in rec.of(ev.Warning))
