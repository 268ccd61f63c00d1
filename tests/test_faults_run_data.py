"""A run's config and data must stay findable (issue 23, point 4): a lost config.toml is read back from the
checkpoint, which carries the whole config and the data directory; a prepared folder is never replaced by
other data behind a run's back, and a resume of a run whose folder changed anyway says so, with a fix that
does not point at that same folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import synthetic_texts, write_fineweb_parquet
from tests.fault_helpers import cli, one_error_line, train_args
from trainer.observe import events as ev
from trainer.observe.runlog import read_events
from trainer.train.resume import CONFIG_FILE, read_run_config


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("corpora")
    first = write_fineweb_parquet(base / "first.parquet", synthetic_texts(200), row_group_size=50)
    other = write_fineweb_parquet(base / "other.parquet", synthetic_texts(300, seed=1), row_group_size=50)
    return first, other


@pytest.mark.parametrize("with_preset", [False, True])
def test_a_lost_config_toml_is_read_back_from_the_checkpoint(pattern_data, tmp_path, capsys, with_preset):
    run = tmp_path / "run"
    assert cli(capsys, *train_args(run, pattern_data.dir, "max_iters=8", "learning_rate=2e-3"))[0] == 0
    trained, data_dir = read_run_config(run)
    (run / CONFIG_FILE).unlink()
    preset = ["--preset", "cpu-tiny"] if with_preset else []  # the preset alone is not what ran (n_layer, lr...)
    rc, out, err = cli(capsys, "train", "--out", str(run), "--resume", *preset, "--set", "max_iters=12")
    assert rc == 0, err
    assert f"{run / CONFIG_FILE} is missing: the run's config and data are read from its checkpoint" in out
    started = [e for e in read_events(run) if isinstance(e, ev.RunStarted)][-1]
    assert started.start_iter == 8 and started.data_dir == data_dir
    again, again_dir = read_run_config(run)  # written again, the run's own values
    assert again.replace(max_iters=8) == trained and again_dir == data_dir


def test_a_lost_config_toml_with_a_checkpoint_without_config_is_one_line(tmp_path, capsys):
    import torch

    run = tmp_path / "run"
    run.mkdir()
    torch.save({"model": {}, "iter_num": 3}, run / "ckpt.pt")  # a checkpoint that holds no config
    rc, _, err = cli(capsys, "train", "--out", str(run), "--resume")
    assert rc == 2
    one_error_line(err)
    assert "is missing and the run's config cannot be read from its checkpoint (ckpt.pt holds no config)" in err
    assert "pass --preset" in err and "--data" in err


def test_preparing_other_data_into_a_prepared_folder_is_refused(corpora, tmp_path, capsys):
    first, other = corpora
    folder = tmp_path / "prepared"
    assert cli(capsys, "prepare", str(first), "--out", str(folder))[0] == 0
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    rc, _, err = cli(capsys, "prepare", str(other), "--out", str(folder))
    assert rc == 2
    one_error_line(err)
    assert f"{folder} already holds data prepared from first.parquet" in err and "pass another --out" in err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # untouched
    assert cli(capsys, "prepare", str(first), "--out", str(folder))[0] == 0  # the same inputs: reused


def test_a_resume_after_the_data_folder_was_replaced_says_it_changed(corpora, tmp_path, capsys):
    import shutil

    first, other = corpora
    folder, run = tmp_path / "prepared", tmp_path / "run"
    assert cli(capsys, "prepare", str(first), "--out", str(folder))[0] == 0
    assert cli(capsys, *train_args(run, folder, "max_iters=4"))[0] == 0
    shutil.rmtree(folder)  # removed, then other data prepared under the same name
    assert cli(capsys, "prepare", str(other), "--out", str(folder))[0] == 0
    before = (run / "ckpt.pt").read_bytes()
    rc, _, err = cli(capsys, "train", "--out", str(run), "--resume", "--set", "max_iters=8")
    assert rc == 2
    one_error_line(err)
    assert f"{folder} changed since this run trained on it" in err and "it was prepared again from other data" in err
    assert f"prepare the run's own data ({first})" in err and "into a new folder" in err
    assert (run / "ckpt.pt").read_bytes() == before
