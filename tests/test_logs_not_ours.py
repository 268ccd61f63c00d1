"""A log that is not fwtui's (issue 23, point 12): `attach`, `report` and `view` say what is wrong in the words
`fwtui runs` uses, in one line, instead of following it forever or writing a report of "unknown"s."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from fwtui.cli import main
from fwtui.commands.attach import build_attach_app
from tests.fault_helpers import cli, one_error_line
from trainer.errors import FwtuiError
from trainer.observe.events import SCHEMA_VERSION
from trainer.runs.listing import RunLock

NEWER = SCHEMA_VERSION + 1
LOGS = {
    "empty": (b"", "events.jsonl is empty"),
    "random-bytes": (random.Random(23).randbytes(3000), "events.jsonl does not start with an fwtui header (not a run log?)"),
    "newer-schema": (b'{"schema": "fwtui.events", "version": %d}\n{"kind": "step", "iter": 1}\n' % NEWER,
                     f"events.jsonl is schema version {NEWER}, newer than this fwtui reads ({SCHEMA_VERSION}); "
                     "upgrade fwtui"),
}


def run_with_log(tmp_path: Path, kind: str) -> Path:
    run = tmp_path / kind
    run.mkdir()
    (run / "events.jsonl").write_bytes(LOGS[kind][0])
    return run


@pytest.mark.parametrize("kind", sorted(LOGS))
def test_attach_report_and_view_say_what_runs_says_in_one_line(tmp_path, capsys, kind):
    run = run_with_log(tmp_path, kind)
    said = LOGS[kind][1]
    rc, out, _ = cli(capsys, "runs", str(run))
    assert rc == 0 and said in out  # what `fwtui runs` already said
    with pytest.raises(FwtuiError) as info:  # before: an app following the log forever, "waiting for the engine"
        build_attach_app(run)
    assert str(info.value) == f"{run / 'events.jsonl'} {said[len('events.jsonl '):]}"
    for args in (["report", str(run), "--out", str(tmp_path / "report")], ["view", "--summary", str(run)],
                 ["view", "--summary", str(run / "events.jsonl")]):
        rc, out, err = cli(capsys, *args)
        assert rc == 2 and out == "", (args, out)
        assert said[len("events.jsonl "):] in one_error_line(err)
    assert not (tmp_path / "report" / "report.md").exists()  # no report of "unknown"s


def test_attach_waits_for_the_header_of_a_live_run_only(tmp_path):
    run = run_with_log(tmp_path, "empty")
    with RunLock(run):  # a trainer that just created its log: the header comes next
        assert build_attach_app(run) is not None
    with pytest.raises(FwtuiError, match="events.jsonl is empty"):
        build_attach_app(run)
    assert main(["attach", str(run)]) == 2
