"""Several users on one machine (issue 23, points 6 and 7): nothing of one user's is reachable by another.

Files in a run or prepare folder are opened without following a symlink someone planted there, a folder
owned by another user is refused, and a run name never puts a run directory outside runs/. Where the
tests run as root they also make two ordinary users (useradd) and plant the symlink as one of them.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.fault_helpers import CLI_SETS, cli, one_error_line, train_args

REPO = Path(__file__).resolve().parents[1]


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


# --- 6. symlinks and hard links planted in a run or prepare folder ----------------------------------------

def victim_file(tmp_path: Path) -> tuple[Path, bytes]:
    precious = tmp_path / "home" / ".bashrc"
    precious.parent.mkdir()
    content = b"# the victim's own file: never appended to, truncated or overwritten\n"
    precious.write_bytes(content)
    return precious, content


@pytest.mark.parametrize("planted", ["events.jsonl", ".lock"])
@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_a_link_planted_as_a_run_file_is_one_line_and_the_victim_file_is_untouched(data, tmp_path, capsys,
                                                                                  planted, link):
    precious, content = victim_file(tmp_path)
    run = tmp_path / "run"
    run.mkdir(mode=0o777)  # made loose before fwtui tightened it: another account planted the link
    (run / planted).symlink_to(precious) if link == "symlink" else os.link(precious, run / planted)
    rc, _, err = cli(capsys, *train_args(run, data.dir))
    assert rc == 2
    line = one_error_line(err)
    assert f"{run / planted} " in line and ("symbolic link" in line or "2 hard links" in line)
    assert "use a folder only you can write" in line
    assert precious.read_bytes() == content and not (run / "ckpt.pt").exists()


def test_a_symlink_planted_as_config_toml_tmp_is_replaced_never_written_through(data, tmp_path, capsys):
    precious, content = victim_file(tmp_path)
    run = tmp_path / "run"
    run.mkdir(mode=0o777)
    (run / "config.toml.tmp").symlink_to(precious)
    rc, _, err = cli(capsys, *train_args(run, data.dir, "max_iters=2"))
    assert rc == 0, err
    assert precious.read_bytes() == content
    assert (run / "config.toml").is_file() and not (run / "config.toml").is_symlink()
    assert not (run / "config.toml.tmp").exists()


def test_symlinks_planted_in_a_prepare_folder_never_write_the_victim_file(tiny_parquet, tmp_path, capsys):
    precious, content = victim_file(tmp_path)
    out = tmp_path / "prepared"
    out.mkdir(mode=0o777)
    for name in ("train.bin.partial", "val.bin.partial", "resume.json.tmp", f"meta.json.tmp-{os.getpid()}"):
        (out / name).symlink_to(precious)  # temps are made anew: the link goes, its target stays
    rc, _, err = cli(capsys, "prepare", str(tiny_parquet), "--out", str(out))
    assert rc == 0, err
    assert precious.read_bytes() == content
    assert (out / "train.bin").stat().st_size > 0 and not (out / "train.bin").is_symlink()
    other = tmp_path / "prepared-again"
    other.mkdir(mode=0o777)
    (other / ".prepare.lock").symlink_to(precious)  # the lock is kept, not made anew: refused in one line
    rc, _, err = cli(capsys, "prepare", str(tiny_parquet), "--out", str(other))
    assert rc == 2 and "is a symbolic link, which fwtui never writes through" in one_error_line(err)
    assert precious.read_bytes() == content


# --- 6. the same with real accounts (needs root to make them) ---------------------------------------------

VICTIM, ATTACKER = "fwtui-t23-victim", "fwtui-t23-attacker"


@pytest.fixture(scope="module")
def accounts():
    """Two ordinary accounts made with useradd (removed afterwards), or a skip naming why not."""
    if os.geteuid() != 0:
        pytest.skip("making two ordinary users needs root (useradd); these tests run as a user here")
    if shutil.which("useradd") is None or shutil.which("userdel") is None:
        pytest.skip("useradd/userdel are not installed here")
    made = []
    for name in (VICTIM, ATTACKER):
        try:
            pwd.getpwnam(name)
        except KeyError:
            done = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                pytest.skip(f"useradd {name} failed: {done.stderr.strip()}")
            made.append(name)
    yield {name: pwd.getpwnam(name) for name in (VICTIM, ATTACKER)}
    for name in made:
        subprocess.run(["userdel", name], capture_output=True)


def run_as(user, args: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess:
    """`args` as `user` (a pwd entry; None: this process's own account) with a clean environment."""
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1",
           "LANG": "C.UTF-8"}
    who = {} if user is None else {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=300, **who)


def plant(attacker, folder: Path, target: Path, *names: str) -> None:
    """As the attacker: make `folder` world-writable (if it is not there yet) and put symlinks to `target` in it."""
    links = " ".join(f"ln -s '{target}' '{folder / name}' &&" for name in names)
    done = run_as(attacker, ["sh", "-c", f"mkdir -p '{folder}' && chmod 777 '{folder}' 2>/dev/null; {links} true"],
                  cwd=folder.parent, home=folder.parent)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("victim_kind", ["root", "ordinary user"])
def test_another_account_cannot_make_the_victim_write_its_own_files(accounts, data, tiny_parquet, victim_kind):
    attacker = accounts[ATTACKER]
    victim = accounts[VICTIM] if victim_kind == "ordinary user" else None
    base = Path(tempfile.mkdtemp(prefix="fwtui-t23-"))  # outside pytest's root-only tmp, so others can reach it
    try:
        base.chmod(0o755)
        home = base / "victim-home"
        home.mkdir(mode=0o700)
        precious = home / "precious.txt"
        precious.write_bytes(b"the victim's own file\n")
        shared = base / "shared"  # a world-writable scratch folder, as on a shared GPU server
        shared.mkdir()
        shared.chmod(0o777)
        inputs = base / "inputs"
        shutil.copytree(data.dir, inputs / "prepared")
        shutil.copy(tiny_parquet, inputs / "tiny.parquet")
        for path in [inputs, *inputs.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        if victim is not None:
            for path in (home, precious):
                os.chown(path, victim.pw_uid, victim.pw_gid)
            try:
                reach = run_as(victim, [sys.executable, "-c", "import fwtui.cli"], cwd=home, home=home)
                why = reach.stderr.strip().splitlines()[-1] if reach.returncode else ""
            except OSError as err:  # e.g. a Python under root's own 0700 home
                why = err.strerror
            if why:
                pytest.skip(f"an ordinary user cannot run this test's Python {sys.executable} ({why}); the "
                            "root-victim case ran with the same attacker account")
        uid = os.geteuid() if victim is None else victim.pw_uid

        def fwtui(*args: str) -> subprocess.CompletedProcess:
            return run_as(victim, [sys.executable, "-m", "fwtui.cli", *args], cwd=home, home=home)

        def loose_folder(name: str) -> Path:  # made by the victim, world-writable, before fwtui tightened it
            folder = shared / name
            folder.mkdir()
            folder.chmod(0o777)
            os.chown(folder, uid, -1)
            return folder

        before = precious.read_bytes()
        train = ["train", "--preset", "cpu-tiny", "--data", str(inputs / "prepared"),
                 *[arg for item in CLI_SETS for arg in ("--set", item)], "--out"]
        # 1. the attacker makes the run folder and plants the log in it: the folder is refused
        plant(attacker, shared / "run-a", precious, "events.jsonl", ".lock")
        done = fwtui(*train, str(shared / "run-a"))
        assert done.returncode == 2, done.stdout + done.stderr
        assert f"belongs to user id {attacker.pw_uid}, not you" in one_error_line(done.stderr)
        # 2. the victim's own loose folder with links planted in it: refused, never written through
        plant(attacker, loose_folder("run-b"), precious, "config.toml.tmp", ".lock", "events.jsonl")
        done = fwtui(*train, str(shared / "run-b"))
        assert done.returncode == 2, done.stdout + done.stderr
        assert "is a symbolic link, which fwtui never writes through" in one_error_line(done.stderr)
        # 3. a loose prepare folder of the victim's with the partial files planted: made anew, never followed
        plant(attacker, loose_folder("prep"), precious, "train.bin.partial", "val.bin.partial", "resume.json.tmp")
        done = fwtui("prepare", str(inputs / "tiny.parquet"), "--out", str(shared / "prep"))
        assert done.returncode == 0, done.stdout + done.stderr
        assert (shared / "prep" / "train.bin").stat().st_uid == uid
        # 4. a prepare folder the attacker made: refused
        plant(attacker, shared / "prep-a", precious)
        done = fwtui("prepare", str(inputs / "tiny.parquet"), "--out", str(shared / "prep-a"))
        assert done.returncode == 2, done.stdout + done.stderr
        assert f"belongs to user id {attacker.pw_uid}, not you" in one_error_line(done.stderr)
        assert precious.read_bytes() == before
    finally:
        shutil.rmtree(base, ignore_errors=True)
