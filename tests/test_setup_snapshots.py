"""Snapshots of the setup screen at 80x24 (SSH) and 120x40, made deterministic.

Fixed: the current directory (a known tree under the test's tmp dir, shown by its name only), the GPU
(an RTX 4070 from a fake probe, no nvidia-smi), no recent files, no earlier runs for the planner, input
cursors that do not blink, and every background worker (GPU, plan, fit marks, parquet scan) answered
before the picture. Update after an intended change with
`pytest tests/test_setup_snapshots.py --snapshot-update`, then look at the SVGs in tests/__snapshots__/.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from textual.widgets import Input

from fwtui.app import AppOptions, FwtuiApp
from tests.conftest import synthetic_texts, write_fineweb_parquet
from trainer.observe.hardware import GpuSummary

RTX_4070 = GpuSummary("NVIDIA GeForce RTX 4070", 12282 * 1024 * 1024)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """cwd = tmp/project holding data/shard.parquet and an empty notes/ folder."""
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    (root / "notes").mkdir()
    write_fineweb_parquet(root / "data" / "shard.parquet", synthetic_texts(100), row_group_size=50)
    monkeypatch.chdir(root)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("FWTUI_CONFIG_DIR", str(tmp_path / "config"))
    return root


def app_in(root: Path, gpus=(RTX_4070,), **options) -> FwtuiApp:
    return FwtuiApp(AppOptions(**options), gpu_probe=lambda: list(gpus), root=root,
                    runs_dir=root.parent / "no-runs")


async def settled(pilot, *, data: bool = False) -> None:
    """Wait for every worker's answer, then stop the cursors blinking."""
    screen = pilot.app.screen
    plan, presets, picker = screen.query_one("#plan"), screen.query_one("#presets"), screen.query_one("#picker")
    deadline = time.monotonic() + 30

    def ready() -> bool:
        return (screen.gpus is not None and (plan.plan is not None or plan.message) and picker.scanned
                and (not screen.gpus or bool(presets.fits))
                and (not data or plan.plan.dataset_tokens is not None))

    while not ready():
        assert time.monotonic() < deadline, "the setup screen never settled"
        await pilot.pause(0.05)
    for box in screen.query(Input):
        box.cursor_blink = False
    await pilot.pause()


def test_setup_narrow(snap_compare, project: Path) -> None:
    """80x24: presets with fit marks for a 12 GB card, the tree, the plan of the first preset."""

    async def run_before(pilot) -> None:
        await settled(pilot)

    assert snap_compare(app_in(project), terminal_size=(80, 24), run_before=run_before)


def test_setup_wide_with_data(snap_compare, project: Path) -> None:
    """120x40: cpu-tiny chosen by keys, the data typed, the plan with the dataset's estimated tokens."""

    async def run_before(pilot) -> None:
        await pilot.press("slash", *"cpu-tiny", "enter", "enter", *"data/shard.parquet", "enter")
        await settled(pilot, data=True)

    assert snap_compare(app_in(project), terminal_size=(120, 40), run_before=run_before)


def test_setup_override_error(snap_compare, project: Path) -> None:
    """120x40: a bad batch size shows the engine's line under the field and in the start line."""

    async def run_before(pilot) -> None:
        screen = pilot.app.screen
        screen.query_one("#set-batch_size").focus()
        await pilot.press(*"eight")
        screen.query_one("#presets").focus_list()
        await pilot.press("t")
        await settled(pilot)

    assert snap_compare(app_in(project, preset="cpu-tiny", data="data/shard.parquet"), terminal_size=(120, 40),
                        run_before=run_before)


def test_setup_demo_offer_without_gpu(snap_compare, project: Path) -> None:
    """80x24: no parquet in reach and no GPU: "CPU", no marks, and the demo corpus on offer."""
    empty = project / "notes"

    async def run_before(pilot) -> None:
        await settled(pilot)

    assert snap_compare(app_in(empty, gpus=()), terminal_size=(80, 24), run_before=run_before)
