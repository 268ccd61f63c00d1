"""Several users on one machine (issue 23, points 6 and 7): nothing of one user's is reachable by another.

Files in a run or prepare folder are opened without following a symlink someone planted there, a folder
owned by another user is refused, and a run name never puts a run directory outside runs/. Where the
tests run as root they also make two ordinary users (useradd) and plant the symlink as one of them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fault_helpers import cli, one_error_line, train_args


@pytest.fixture(scope="module")
def data(pattern_data):
    """The tiny model's data: tests/conftest.py write_pattern_dataset."""
    return pattern_data


# --- 7. run names ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../../escaped", "ABSOLUTE", "..", "a/b", "a\\b", "tab\there"])
def test_a_run_name_that_is_a_path_is_one_line_and_makes_nothing_outside_runs(data, tmp_path, capsys,
                                                                              monkeypatch, name):
    work = tmp_path / "a" / "b" / "work"
    work.mkdir(parents=True)
    name = str(tmp_path / "absolute") if name == "ABSOLUTE" else name
    monkeypatch.chdir(work)  # runs/ is work/runs: ../../escaped would land in tmp_path/a
    args = train_args(Path("unused"), data.dir, f"name={name}")
    out_at = args.index("--out")
    del args[out_at:out_at + 2]  # no --out: the run directory is runs/NAME-DATE
    rc, _, err = cli(capsys, *args)
    assert rc == 2
    one_error_line(err)
    assert "name = " in err and "plain name" in err
    assert not (work / "runs").exists()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b"]  # nothing escaped beside work/
    assert not list(tmp_path.glob("absolute*"))
