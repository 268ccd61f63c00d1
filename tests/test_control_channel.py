"""The control channel: commands from another process reach a real Controls; only the owner's files count."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainer.runs.control_channel import ControlChannelError, ControlChannelServer, ControlClient, control_dir, is_served
from trainer.train.controls import Controls, SampleRequest
from trainer.observe.events import RunStarted, StateChanged

REPO = Path(__file__).resolve().parents[1]


def wait_until(predicate, timeout: float = 10.0) -> bool:
    """Poll a condition (the server thread runs every 0.2 s); a deadline, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def channel(tmp_path: Path):
    controls = Controls()
    warnings: list[str] = []
    server = ControlChannelServer(tmp_path, controls, on_warning=warnings.append)
    server.start()
    yield tmp_path, controls, server, warnings
    server.stop()


def test_directory_and_files_are_owner_only(tmp_path: Path) -> None:
    run = tmp_path
    server = ControlChannelServer(run, Controls()).start(poll_thread=False)  # files stay to be looked at
    info = os.stat(control_dir(run))
    assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid()
    path = ControlClient(run).send("eval")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert json.loads(path.read_text()) == {"cmd": "eval"}
    assert not [n for n in os.listdir(control_dir(run)) if n.endswith(".tmp")]  # no temp file left behind
    server.stop()


def test_every_command_reaches_the_controls(channel) -> None:
    run, controls, server, warnings = channel
    client = ControlClient(run)
    client.request_sample("Once upon", 50, 0.5, None)
    client.request_eval()
    client.request_checkpoint()
    assert wait_until(lambda: server.applied == 3)
    taken = controls.take()
    assert taken.evaluate and taken.checkpoint
    assert taken.samples == [SampleRequest("Once upon", 50, 0.5, None)]
    client.pause()
    assert wait_until(lambda: controls.paused)
    client.resume()
    assert wait_until(lambda: not controls.paused)
    client.stop("stopped from attach")
    assert wait_until(lambda: controls.stop_requested)
    assert controls.stop_reason == "stopped from attach"
    assert commands(run) == [] and warnings == []  # applied commands are deleted


def test_toggle_pause_uses_what_the_viewer_saw(channel) -> None:
    run, controls, server, _ = channel
    client = ControlClient(run)
    assert client.toggle_pause() is None  # nothing seen yet: a plain toggle
    assert wait_until(lambda: controls.paused)
    client.observe(StateChanged(iter=5, state="paused"))
    assert client.toggle_pause() is False  # it was paused: ask for running, explicitly
    assert wait_until(lambda: not controls.paused)
    client.observe(StateChanged(iter=5, state="running"))
    other = ControlClient(run)  # a second viewer that saw the same state
    other.observe(StateChanged(iter=5, state="running"))
    assert client.toggle_pause() is True and other.toggle_pause() is True
    assert wait_until(lambda: server.applied == 4)
    assert controls.paused  # two pauses at once still mean paused (toggles would have cancelled out)
    client.observe(RunStarted(run_dir=str(run), config={}, params=1, params_with_embeddings=1, device="cpu",
                              device_name="cpu", device_memory_bytes=None, peak_flops=None, peak_flops_source="",
                              flops_per_token=1, tokens_per_iter=1, dataset_tokens=1, start_iter=0, max_iters=1,
                              precision="float32", compiled=False))
    assert client.paused is False


def test_client_in_another_process(channel) -> None:
    run, controls, server, _ = channel
    code = ("import sys; from trainer.runs.control_channel import ControlClient\n"
            "c = ControlClient(sys.argv[1]); c.request_sample('From afar', 20, 1.0, 5); c.request_checkpoint()\n")
    subprocess.run([sys.executable, "-c", code, str(run)], check=True, cwd=REPO, timeout=60)
    assert wait_until(lambda: server.applied == 2)
    taken = controls.take()
    assert taken.checkpoint and taken.samples == [SampleRequest("From afar", 20, 1.0, 5)]


def test_refused_files(tmp_path: Path) -> None:
    run, controls, warnings = tmp_path, Controls(), []
    # polled by hand so each case is seen alone
    server = ControlChannelServer(run, controls, on_warning=warnings.append).start(poll_thread=False)
    client = ControlClient(run)
    loose = client.send("stop", reason="from a group-writable file")
    os.chmod(loose, 0o666)  # as if another user could have written it
    assert server.poll_once() == 0 and not controls.stop_requested
    assert not loose.exists() and "0666" in warnings[-1]
    (control_dir(run) / "0-link.json").symlink_to(client.send("eval"))
    bad_json = control_dir(run) / "1-bad.json"
    bad_json.write_text("{not json")
    os.chmod(bad_json, 0o600)
    unknown = client.send("eval")
    unknown.write_text(json.dumps({"cmd": "format_disk"}))
    bad_args = client.send("sample")
    bad_args.write_text(json.dumps({"cmd": "sample", "max_new_tokens": "lots"}))
    assert server.poll_once() == 1  # only the real eval behind the symlink
    taken = controls.take()
    assert taken.evaluate and taken.samples == [] and not controls.stop_requested
    assert commands(run) == []
    server.stop()
    joined = "\n".join(warnings)
    assert "0-link.json" in joined and "not a JSON command" in joined and "format_disk" in joined
    assert "bad arguments for 'sample'" in joined


def test_stale_commands_are_dropped_at_start(tmp_path: Path) -> None:
    first = ControlChannelServer(tmp_path, Controls()).start(poll_thread=False)
    ControlClient(tmp_path).stop("left over from a run that died")
    first.stop()  # its process ended before reading it
    controls = Controls()
    server = ControlChannelServer(tmp_path, controls).start(poll_thread=False)
    try:
        assert commands(tmp_path) == []
        server.poll_once()
        assert not controls.stop_requested
    finally:
        server.stop()


def test_nobody_listening_is_one_line_not_a_crash(tmp_path: Path) -> None:
    errors: list[str] = []
    client = ControlClient(tmp_path, on_error=errors.append)
    client.request_checkpoint()  # no trainer: nothing is written, the viewer hears why
    assert not is_served(tmp_path) and len(errors) == 1 and "no trainer is taking commands" in errors[0]
    assert client.toggle_pause() is None and client.last_error
    with pytest.raises(ControlChannelError):
        client.send("eval")
    assert not control_dir(tmp_path).exists() or commands(tmp_path) == []
    server = ControlChannelServer(tmp_path, Controls()).start(poll_thread=False)
    try:
        assert is_served(tmp_path)
        with pytest.raises(ControlChannelError, match="already takes this run's commands"):
            ControlChannelServer(tmp_path, Controls()).start()  # one trainer per run
    finally:
        server.stop()
    assert not is_served(tmp_path)  # released with the server


def test_loosened_directory_is_tightened(tmp_path: Path) -> None:
    control_dir(tmp_path).mkdir(mode=0o777)
    os.chmod(control_dir(tmp_path), 0o777)
    server = ControlChannelServer(tmp_path, Controls()).start(poll_thread=False)
    server.stop()
    assert stat.S_IMODE(os.stat(control_dir(tmp_path)).st_mode) == 0o700


def commands(run: Path) -> list[str]:
    """Command files waiting in RUN/control (the server's own lock file aside)."""
    return [n for n in os.listdir(control_dir(run)) if n.endswith(".json")]


def test_a_directory_named_like_a_command_is_refused_once_not_every_poll(tmp_path: Path) -> None:
    """The probe saw one refused every 0.2 s forever (432k lines a day): it is refused once, then left alone."""
    run, controls, warnings = tmp_path, Controls(), []
    server = ControlChannelServer(run, controls, on_warning=warnings.append).start(poll_thread=False)
    stuck = control_dir(run) / "x.json"
    stuck.mkdir()
    (stuck / "inside").write_text("a directory that is not empty")
    client = ControlClient(run)
    for _ in range(20):
        assert server.poll_once() == 0
    assert len(warnings) == 1 and "x.json" in warnings[0] and "not a plain file" in warnings[0]
    assert "remove it yourself" in warnings[0] and stuck.is_dir()  # the user's directory is not deleted
    client.send("eval")  # real commands beside it still work
    assert server.poll_once() == 1 and controls.take().evaluate and len(warnings) == 1
    shutil.rmtree(stuck)
    assert server.poll_once() == 0
    stuck.mkdir()  # made again after being removed: refused again, once
    server.poll_once()
    server.poll_once()
    server.stop()
    assert len(warnings) == 2
