"""Issue 20, section 2, in the app (Textual's pilot at 80×24 and 120×40): what a newcomer met in the first hour.

`q` quits the setup screen and a shell line typed into it starts nothing; a parquet without a `text` column is
named on the plan and refused by `t`; `fwtui --demo` says what `d` did and offers no demo beside it; and the
line printed after `q` on a stopped run says how to continue it.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fwtui.commands.app import closing_line
from fwtui.screens import typing_guard
from tests.conftest import synthetic_texts, write_fineweb_parquet
from tests.setup_helpers import make_app, settle
from trainer.observe.events import Finished

SIZES = [(80, 24), (120, 40)]


@pytest.mark.parametrize("size", SIZES)
async def test_q_quits_the_setup_screen_but_types_into_a_field(home: Path, size) -> None:
    app = make_app(home)
    async with app.run_test(size=size) as pilot:
        app.screen.query_one("#data-path").focus()
        await pilot.press("q")  # a path may hold a q: the field takes it
        assert app.return_code is None and app.screen.query_one("#picker").path_text == "q"
        app.screen.query_one("#presets").focus_list()
        await pilot.pause()
        footer = [key.description for key in app.screen.query("FooterKey")]
        assert "quit" in footer, footer  # the footer (and README's key table) say so
        await pilot.press("q")
        await pilot.pause()
        assert app.return_code == 0  # closed


SHELL_LINE = ["c", "d", "space", "d", "a", "t", "a", "enter", "f", "w", "t", "u", "i", "space", "t", "r", "a", "i",
              "n", "space", "t", "enter"]
"""`cd data⏎fwtui train t⏎` typed at the screen: its d, t and Enter are commands here."""


@pytest.mark.parametrize("size", SIZES)
async def test_a_shell_line_typed_at_the_setup_screen_starts_nothing(home: Path, size, monkeypatch) -> None:
    data = write_fineweb_parquet(home / "shard.parquet", synthetic_texts(20))
    demo = types.ModuleType("trainer.data.demo")  # `d` must not even be asked for
    demo.build_demo_corpus = lambda path=None: pytest.fail("the typed d built the demo corpus")
    demo.default_path = lambda: home / "no-demo.parquet"
    monkeypatch.setitem(sys.modules, "trainer.data.demo", demo)
    app = make_app(home, preset="cpu-tiny", data=str(data))
    async with app.run_test(size=size) as pilot:
        screen = app.screen
        await settle(pilot, lambda: screen.data == str(data))
        screen.query_one("#presets").focus_list()
        await pilot.press(*SHELL_LINE)
        await pilot.pause()
        assert app.started_with is None
        assert screen.query_one("#picker").path_text == str(data)  # no demo corpus chose itself
        assert any("ignored: it came among typed letters" in n.message for n in app._notifications)
        # `t` pressed on its own (the guard's time gone by) starts the run as before
        monkeypatch.setattr(typing_guard, "TYPING_GUARD_SECONDS", 0.0)
        await pilot.press("t")
        await settle(pilot, lambda: app.started_with is not None)
        assert app.started_with.data == str(data)


def body_parquet(path: Path) -> Path:
    texts = synthetic_texts(40)
    pq.write_table(pa.table({"id": list(range(len(texts))), "body": texts}), path)
    return path


@pytest.mark.parametrize("size", SIZES)
async def test_a_parquet_without_a_text_column_is_named_and_not_started(home: Path, size) -> None:
    from fwtui.recent import load_recent

    from fwtui.app import AppOptions, FwtuiApp

    data = body_parquet(home / "body.parquet")
    # the real app (a start would train, remember the path and make runs/): `t` must do none of it
    app = FwtuiApp(AppOptions(preset="cpu-tiny", data=str(data)), gpu_probe=lambda: [], root=home)
    async with app.run_test(size=size) as pilot:
        screen = app.screen
        plan = screen.query_one("#plan")
        await settle(pilot, lambda: plan.message is not None and "no column 'text'" in plan.message)
        assert "its text columns: body" in plan.message and "--text-column NAME" in plan.message
        screen.query_one("#presets").focus_list()
        await pilot.press("t")
        await pilot.pause()
        assert app.session is None and app.screen is screen  # no run, still on the setup screen
        problem = str(screen.query_one("#start-problem").render())
        assert problem.startswith("data: ") and "no column 'text'" in problem
    assert str(data) not in load_recent() and not (home / "runs").exists()

    app = make_app(home, preset="cpu-tiny", data=str(data), overrides=["text_column=body"])  # --text-column body
    async with app.run_test(size=size) as pilot:
        plan = app.screen.query_one("#plan")
        await settle(pilot, lambda: plan.plan is not None and plan.plan.dataset_tokens)
        app.screen.query_one("#presets").focus_list()
        await pilot.press("t")
        await settle(pilot, lambda: app.started_with is not None)


@pytest.mark.parametrize("size", SIZES)
async def test_demo_opens_without_offering_it_again_and_d_says_what_it_did(home: Path, size, monkeypatch) -> None:
    source = write_fineweb_parquet(home / "source.parquet", synthetic_texts(5))
    cached = home / "cache" / "demo.parquet"
    built: list[Path] = []

    def build(path=None):
        if not cached.is_file():
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_bytes(source.read_bytes())
            built.append(cached)
        return cached

    demo = types.ModuleType("trainer.data.demo")
    demo.build_demo_corpus, demo.default_path = build, lambda: cached
    monkeypatch.setitem(sys.modules, "trainer.data.demo", demo)
    root = home / "empty"  # no parquet in reach: before, the offer showed under the demo path
    root.mkdir()
    from tests.setup_helpers import RecordingApp
    from fwtui.app import AppOptions

    app = RecordingApp(AppOptions(demo=True, preset="cpu-tiny"), gpu_probe=lambda: [], root=root,
                       runs_dir=home / "runs")
    async with app.run_test(size=size) as pilot:
        picker = app.screen.query_one("#picker")
        await settle(pilot, lambda: picker.scanned and picker.path_text == str(cached))
        await pilot.pause()
        assert not picker.demo_offered
        messages = [n.message for n in app._notifications]
        assert any("the demo corpus" in m and "built just now" in m for m in messages), messages
        app.screen.query_one("#presets").focus_list()
        await pilot.press("d")
        await settle(pilot, lambda: any("built before, reused" in n.message for n in app._notifications))
        assert built == [cached] and not picker.demo_offered


def test_the_closing_line_says_how_to_continue_a_stopped_run(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "cpu-tiny-1"
    stopped = closing_line(run, Finished(iter=16, reason="stopped", seconds=3.0))
    assert f"`fwtui --out {run} --resume`" in stopped and f"`fwtui train --out {run} --resume`" in stopped
    assert "stopped at iter 16" in stopped
    done = closing_line(run, Finished(iter=70, reason="completed", seconds=3.0))
    assert "completed at iter 70" in done and f"fwtui attach {run}" in done
