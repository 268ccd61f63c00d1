"""A new user's first run: `fwtui --demo --start` on a fresh machine reaches an evaluation and a sample.

The README's first command, as typed, through the real CLI parser and the real app (Textual's pilot): a
fresh HOME and empty XDG/FWTUI cache dirs (so the demo corpus is built and prepared from scratch), no
tokenizer setting (the shipped ranks), cpu-tiny with its own settings except max_iters, the real engine
on the CPU. It failed when the 1,607-document demo corpus got one 66-token validation document.
"""

from __future__ import annotations

import json
import re
import time
import tomllib
from pathlib import Path

import pytest

from fwtui.app import FwtuiApp
from fwtui.cli import build_parser
from fwtui.commands.app import options_from_args
from fwtui.screens import dashboard as dashboard_module
from trainer.data.tokenizer import R50K_SHA256

REPO = Path(__file__).resolve().parents[1]
TORCH_APIS = {
    "torch.nn.utils.get_total_norm": (2, 6),  # pytorch/pytorch#139662, merged Nov 2024, first in 2.6
    "torch.amp.GradScaler": (2, 3),  # device-generic GradScaler; torch.cuda.amp's before that
    "weights_only=True": (1, 13),
}
"""Newer torch APIs the code uses, with the release that brought each: the declared bound must cover them."""
WAIT_SECONDS = 120.0
"""Upper bound for any one wait below (a bound, not a timing); the whole test takes ~15-30 s here."""


@pytest.fixture
def fresh_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME and every directory fwtui reads or writes point into tmp_path; no FWTUI_* setting."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var, sub in (("XDG_CACHE_HOME", ".cache"), ("XDG_STATE_HOME", ".local/state"),
                     ("XDG_CONFIG_HOME", ".config"), ("XDG_DATA_HOME", ".local/share")):
        monkeypatch.setenv(var, str(home / sub))
    monkeypatch.setenv("FWTUI_CACHE_DIR", str(home / ".cache" / "fwtui" / "data"))
    for var in ("FWTUI_TOKENIZER_FILE", "FWTUI_SHAKESPEARE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(home)
    return home


async def wait_for(pilot, condition, what: str, describe=lambda: "") -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}; {describe()}")
        await pilot.pause(0.1)


async def test_demo_start_reaches_an_evaluation_and_a_sample(fresh_machine: Path, monkeypatch) -> None:
    from trainer.observe.events import Eval, Failed, Sample
    from trainer.observe.runlog import read_events

    # `s` asks for 200 tokens; 24 show the same path (the engine's sampler on the live model) in less time.
    monkeypatch.setitem(dashboard_module.SAMPLE_SETTINGS, "max_new_tokens", 24)
    run_dir = fresh_machine / "first-run"
    # max_iters above what the test waits for (it stops the run with q once the sample is in).
    args = build_parser().parse_args(["--demo", "--start", "--out", str(run_dir), "--set", "max_iters=2000"])
    options = options_from_args(args)
    assert options.demo and options.start and options.preset == "cpu-tiny"

    def events():
        return read_events(run_dir) if (run_dir / "events.jsonl").is_file() else []

    def failure() -> str:
        failed = [e for e in events() if isinstance(e, Failed)]
        dashboard = app.dashboard
        shown = dashboard.error_message if dashboard is not None else None
        return f"failed: {failed[-1].message if failed else shown}" if failed or shown else "no failure shown"

    app = FwtuiApp(options, gpu_probe=lambda: [], root=fresh_machine)
    async with app.run_test(size=(120, 40)) as pilot:
        # The demo corpus is built, prepared and trained on without a key pressed.
        await wait_for(pilot, lambda: app.dashboard is not None and app.screen is app.dashboard,
                       "the dashboard (demo corpus built, run started)")
        dashboard = app.dashboard
        await wait_for(pilot, lambda: any(isinstance(e, Eval) for e in events()) or dashboard.error_message,
                       "the first evaluation", failure)
        assert dashboard.error_message is None, failure()
        first_eval = next(e for e in events() if isinstance(e, Eval))
        assert first_eval.val_loss > 0 and first_eval.train_loss > 0

        await pilot.press("s")
        await pilot.press(*"The")
        await pilot.press("enter")
        modal = app.screen
        await wait_for(pilot, lambda: getattr(modal, "generated_text", "") != "" or dashboard.error_message,
                       "the sample text", failure)
        assert modal.generated_text.strip(), repr(modal.generated_text)
        await pilot.press("escape")
        await pilot.press("q")
        await pilot.press("y")
        await wait_for(pilot, lambda: dashboard.finished_reason is not None, "the run to stop", failure)
    assert app.session is not None and app.session.done.wait(60)
    assert dashboard.finished_reason == "stopped", failure()

    samples = [e for e in events() if isinstance(e, Sample)]
    assert samples and samples[-1].prompt == "The" and samples[-1].text
    # The demo corpus was prepared under the fresh cache, and its val split holds enough for block 128.
    prepared = sorted((fresh_machine / ".cache" / "fwtui" / "data").glob("*/meta.json"))
    assert prepared, "no prepared dataset under the fresh cache"
    meta = json.loads(prepared[0].read_text())
    assert meta["splits"]["val"]["tokens"] > 8 * (1024 + 1), meta["splits"]
    assert meta["tokenizer"]["sha256"] == R50K_SHA256  # the shipped ranks, with no setting and no download


def test_the_declared_torch_bound_covers_the_apis_the_code_uses():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    torch_dep = next(d for d in project["dependencies"] if re.match(r"torch\b", d))
    match = re.fullmatch(r"torch>=(\d+)\.(\d+)", torch_dep.replace(" ", ""))
    assert match, torch_dep
    bound = (int(match[1]), int(match[2]))
    source = "\n".join(p.read_text(encoding="utf-8") for folder in ("trainer", "fwtui")
                       for p in (REPO / folder).rglob("*.py"))
    used = {api: version for api, version in TORCH_APIS.items() if api in source}
    assert "torch.nn.utils.get_total_norm" in used
    assert bound >= max(used.values()), f"{torch_dep} but the code uses {used}"
    assert bound <= (2, 11), "a GPU machine with torch 2.11 must satisfy the bound"


def test_a_non_editable_install_carries_the_gpt2_ranks():
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert "trainer.data.assets" in config["packages"]
    shipped = config["package-data"]["trainer.data.assets"]
    assert "r50k_base.tiktoken" in shipped and "LICENSE" in shipped
    assert all((REPO / "trainer" / "data" / "assets" / name).is_file() for name in shipped)
