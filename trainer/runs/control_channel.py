"""Commands to a running trainer from other processes (`fwtui attach`, `fwtui serve`): RUN/control/.

The channel is a directory, owner-only (0700), holding one small JSON file per command (0600), e.g.
{"cmd": "sample", "prompt": "The", "max_new_tokens": 100, "temperature": 0.8, "top_k": 200}. A client
writes a hidden temp file and renames it into place, so the server never reads half a command. The
server (a daemon thread in the trainer's process) polls the directory every 0.2 s, applies each command
to the run's Controls in name order (names start with a nanosecond clock) and deletes it. A file owned by
another user, readable or writable by group or others, or not a plain file is deleted unread, with a
warning: only the run's owner may steer it. What a command did shows up in events.jsonl (a Sample,
a CheckpointSaved, a StateChanged), which is how every viewer sees it.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any, Callable

from trainer.train.controls import Controls
from trainer.errors import FwtuiError
from trainer.runs.locks import is_locked

CONTROL_DIR = "control"
SERVER_LOCK = ".server"
"""RUN/control/.server: flock-held by the process taking the run's commands (so a client can tell whether
anyone listens, and a second server on the same run is refused). The kernel drops it when that process ends."""
COMMANDS = ("sample", "stop", "pause", "resume", "toggle_pause", "eval", "checkpoint", "hellaswag")
MAX_COMMAND_BYTES = 64 * 1024
POLL_SECONDS = 0.2


class ControlChannelError(FwtuiError):
    """The control directory cannot be used safely."""


def control_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CONTROL_DIR


def ensure_control_dir(run_dir: str | Path) -> Path:
    """RUN/control as an owner-only directory of ours; ControlChannelError if it belongs to someone else."""
    path = control_dir(run_dir)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise ControlChannelError(f"{path}: is not a directory; remove it so the run can take commands")
    if info.st_uid != os.getuid():
        raise ControlChannelError(f"{path}: belongs to user id {info.st_uid}, not you; remove it")
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)  # umask or a copy loosened it: only the owner may drop commands here
    return path


class ControlChannelServer:
    """Watches RUN/control/ and applies each command to `controls`. start() / stop().

    `on_warning` receives one line per refused or unreadable command (the engine turns it into a Warning
    event); it must not block.
    """

    def __init__(self, run_dir: str | Path, controls: Controls, *,
                 on_warning: Callable[[str], None] | None = None, poll_seconds: float = POLL_SECONDS) -> None:
        self.run_dir = Path(run_dir)
        self.controls = controls
        self.on_warning = on_warning
        self.poll_seconds = poll_seconds
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock_fd: int | None = None
        self.applied = 0
        """Commands applied so far (for tests and the lead's checks)."""
        self._left: set[str] = set()
        """Names refused once that could not be removed (a directory named x.json): not looked at again."""

    def start(self, *, poll_thread: bool = True) -> "ControlChannelServer":
        """Take the run's commands: lock RUN/control/.server, drop stale commands, start polling.

        ControlChannelError if another server (this process or another) already serves the run.
        `poll_thread=False` leaves polling to `poll_once()` calls (tests).
        """
        try:
            self.path = ensure_control_dir(self.run_dir)
            fd = os.open(self.path / SERVER_LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as err:  # a read-only or foreign run directory: the run trains, unsteerable
            raise ControlChannelError(f"{control_dir(self.run_dir)}: cannot set up the control channel "
                                      f"({err.strerror or err})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ControlChannelError(f"{self.run_dir}: another trainer already takes this run's commands") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        # Commands left from an earlier process were meant for a run that is gone: a stale "stop" must not
        # end the resumed one.
        for name in os.listdir(self.path):
            if name != SERVER_LOCK:
                _remove(self.path / name)
        self._halt.clear()
        if poll_thread:
            self._thread = threading.Thread(target=self._loop, name="fwtui-control", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling and release the run's commands (clients then hear that nobody listens)."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "ControlChannelServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._halt.wait(self.poll_seconds):
            try:
                self.poll_once()
            except Exception as err:  # noqa: BLE001 - the channel must never take the trainer down
                self._warn(f"control channel: {type(err).__name__}: {err}")

    def poll_once(self) -> int:
        """Apply every command waiting now; returns how many were applied."""
        try:
            listing = set(os.listdir(self.path))
        except FileNotFoundError:
            self.path = ensure_control_dir(self.run_dir)  # removed under us: make it again
            return 0
        self._left &= listing  # one removed by the user may come back as a real command
        names = sorted(n for n in listing - self._left if n.endswith(".json") and not n.startswith("."))
        done = 0
        for name in names:
            command = self._take(self.path / name)
            if command is not None and self._apply(name, command):
                done += 1
        self.applied += done
        return done

    def _take(self, path: Path) -> dict[str, Any] | None:
        """Read and delete one command file; None (after a warning) if it is refused or unreadable."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None  # another server took it (two trainers on one run are refused elsewhere)
        except OSError as err:  # a symlink (ELOOP), or unreadable
            self._refuse(path, str(err.strerror), removed=_remove(path))
            return None
        try:
            info = os.fstat(fd)
            why = ""
            if not stat.S_ISREG(info.st_mode):
                why = "not a plain file"
            elif info.st_uid != os.getuid():
                why = f"owned by user id {info.st_uid}, not the run's owner"
            elif info.st_mode & 0o077:
                why = f"mode {stat.S_IMODE(info.st_mode):04o} lets others read or write it (must be 0600)"
            elif info.st_size > MAX_COMMAND_BYTES:
                why = f"{info.st_size} bytes is too large for a command"
            data = b"" if why else os.read(fd, MAX_COMMAND_BYTES + 1)
        finally:
            os.close(fd)
            removed = _remove(path)
        if why:
            self._refuse(path, why, removed=removed)
            return None
        try:
            command = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            self._warn(f"control: refused {path.name}: not a JSON command")
            return None
        if not isinstance(command, dict):
            self._warn(f"control: refused {path.name}: not a JSON object")
            return None
        return command

    def _refuse(self, path: Path, why: str, *, removed: bool) -> None:
        if not removed:  # refused once, then left alone: never the same warning every poll
            self._left.add(path.name)
            why += "; it stays there (remove it yourself) and is not looked at again"
        self._warn(f"control: refused {path.name}: {why}")

    def _apply(self, name: str, command: dict[str, Any]) -> bool:
        cmd = command.get("cmd")
        c = self.controls
        try:
            if cmd == "sample":
                top_k = command.get("top_k", 200)
                c.request_sample(str(command.get("prompt", "\n")), int(command.get("max_new_tokens", 200)),
                                 float(command.get("temperature", 0.8)), None if top_k is None else int(top_k))
            elif cmd == "stop":
                c.stop(str(command.get("reason", "stop requested from another terminal"))[:200])
            elif cmd == "pause":
                c.pause()
            elif cmd == "resume":
                c.resume()
            elif cmd == "toggle_pause":
                c.toggle_pause()
            elif cmd == "eval":
                c.request_eval()
            elif cmd == "checkpoint":
                c.request_checkpoint()
            elif cmd == "hellaswag":
                c.request_hellaswag()
            else:
                self._warn(f"control: refused {name}: unknown command {cmd!r} (known: {', '.join(COMMANDS)})")
                return False
        except (TypeError, ValueError) as err:
            self._warn(f"control: refused {name}: bad arguments for {cmd!r} ({err})")
            return False
        return True

    def _warn(self, message: str) -> None:
        if self.on_warning is not None:
            try:
                self.on_warning(message)
            except Exception:  # noqa: BLE001 - a broken sink must not stop the channel
                pass


def _remove(path: Path) -> bool:
    """Unlink `path`; False when it is still there (a directory, or not ours to remove)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:  # IsADirectoryError, EPERM, EACCES
        return False
    return True


def is_served(run_dir: str | Path) -> bool:
    """Whether a trainer takes this run's commands now (holds RUN/control/.server)."""
    return bool(is_locked(control_dir(run_dir) / SERVER_LOCK, follow_symlinks=False))


class ControlClient:
    """The request methods of trainer.train.controls.Controls, delivered to a run in another process.

    Methods return at once and never raise (a viewer's key must not crash it): when no trainer takes the
    run's commands, or the file cannot be written, `on_error` gets one line and `last_error` keeps it.
    What the trainer did appears in events.jsonl. `observe(event)` lets a viewer tell the client the run's
    state, so `toggle_pause` sends an explicit pause or resume — two viewers pressing `p` together then
    agree instead of cancelling out.
    """

    def __init__(self, run_dir: str | Path, *, on_error: Callable[[str], None] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.on_error = on_error
        self.last_error = ""
        self.paused: bool | None = None
        """The run's last known state from observed events; None until one is seen."""
        self._seq = 0
        self._lock = threading.Lock()

    def observe(self, event: Any) -> None:
        kind = getattr(event, "kind", "")
        if kind == "run_started":
            self.paused = False  # a run starts running
        elif kind == "state":
            self.paused = event.state == "paused"

    def send(self, cmd: str, **args: Any) -> Path:
        """Drop one command file (0600, atomic rename) into RUN/control/; returns its path.

        ControlChannelError when no trainer takes this run's commands (the run ended, or is not running).
        """
        if cmd not in COMMANDS:
            raise ValueError(f"unknown control command {cmd!r}")
        if not is_served(self.run_dir):
            raise ControlChannelError(f"{self.run_dir.name}: no trainer is taking commands for this run "
                                      "(it has ended, or was started without a control channel)")
        path = ensure_control_dir(self.run_dir)
        with self._lock:
            self._seq += 1
            stem = f"{time.time_ns():020d}-{os.getpid()}-{self._seq:04d}"
        tmp = path / f".{stem}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"cmd": cmd, **args}, f)
        final = path / f"{stem}.json"
        os.replace(tmp, final)
        return final

    def _deliver(self, cmd: str, **args: Any) -> bool:
        try:
            self.send(cmd, **args)
        except (ControlChannelError, OSError) as err:
            self.last_error = str(err) if isinstance(err, ControlChannelError) else \
                f"cannot send {cmd!r} to the run: {err.strerror or err}"
            if self.on_error is not None:
                self.on_error(self.last_error)
            return False
        self.last_error = ""
        return True

    # --- the Controls interface ---
    def stop(self, reason: str = "stop requested from another terminal") -> None:
        self._deliver("stop", reason=reason)

    def pause(self) -> None:
        self._deliver("pause")

    def resume(self) -> None:
        self._deliver("resume")

    def toggle_pause(self) -> bool | None:
        """Ask for the other state; returns True when asking to pause, False when asking to resume, None when
        the state is unknown (a plain toggle was sent) or nothing could be sent."""
        if self.paused is None:
            self._deliver("toggle_pause")
            return None
        if not self._deliver("resume" if self.paused else "pause"):
            return None
        return not self.paused

    def request_eval(self) -> None:
        self._deliver("eval")

    def request_checkpoint(self) -> None:
        self._deliver("checkpoint")

    def request_hellaswag(self) -> None:
        self._deliver("hellaswag")

    def request_sample(self, prompt: str = "\n", max_new_tokens: int = 200, temperature: float = 0.8,
                       top_k: int | None = 200) -> None:
        self._deliver("sample", prompt=prompt, max_new_tokens=max_new_tokens, temperature=temperature,
                      top_k=top_k)
