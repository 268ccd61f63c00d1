"""The setup screen's smaller stumbles of a newcomer's first hour (issue 20), each at 80x24 and 120x40: `?` help,
the preset a CPU machine starts on (or the last one used), `g`/`G` both ways round the cards, a `/` filter that
Esc clears, digits for every preset, and rows of runs and recent files that never wrap mid-word."""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import pytest

from fwtui.recent import remember
from fwtui.screens.help import HelpModal
from tests.conftest import synthetic_texts, write_fineweb_parquet
from tests.dashboard_script import T0, run_started, step
from tests.setup_helpers import make_app, settle, visible_names
from tests.test_dashboard_first_hour import screen_lines
from trainer.observe import events as ev
from trainer.observe.hardware import GpuSummary
from trainer.observe.runlog import EventLogWriter
from trainer.plan.target import next_card

SIZES = [(80, 24), (120, 40)]
RTX_4070 = GpuSummary("NVIDIA GeForce RTX 4070", 12282 * 1024 * 1024)


@pytest.mark.parametrize("size", SIZES)
async def test_question_mark_opens_the_setup_screens_own_help(home: Path, size) -> None:
    app = make_app(home)
    async with app.run_test(size=size) as pilot:
        await settle(pilot, lambda: app.screen.gpus is not None)
        await pilot.pause()
        assert "? help" in screen_lines(app)[-1]  # offered in the footer
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpModal)
        keys = [key for key, _ in app.screen.rows()]
        assert {"/", "t", "d", "r", "g G", "1-9 0", "?"} <= set(keys)
        lines = screen_lines(app)
        filter_line = next(i for i, line in enumerate(lines) if "filter the presets" in line)
        column = lines[filter_line].index("filter the presets")
        if "Esc clears it" not in lines[filter_line]:  # wrapped: the rest sits in the description column
            assert lines[filter_line + 1][column - 2:column] == "  " and lines[filter_line + 1][column] != " "
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpModal)


@pytest.mark.parametrize("size", SIZES)
async def test_a_machine_without_gpu_starts_on_cpu_tiny(home: Path, size) -> None:
    app = make_app(home)  # the probe finds no GPU
    async with app.run_test(size=size) as pilot:
        screen = app.screen
        panel = screen.query_one("#plan")
        await settle(pilot, lambda: screen.gpus is not None and "cpu-tiny" in str(panel.border_title))
        assert screen.base.name == "cpu-tiny"
        assert screen.query_one("#preset-options").highlighted_option.id == "cpu-tiny"
        plan = panel.plan
        assert plan.est_memory_bytes < 4e9  # cpu-tiny's, not 16gb's ≈ 63.6 GB


async def test_a_gpu_machine_keeps_the_first_preset_and_a_chosen_one_is_kept(home: Path) -> None:
    app = make_app(home, gpus=[RTX_4070])
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await settle(pilot, lambda: screen.gpus is not None)
        assert screen.base.name == visible_names(screen)[0]
    app = make_app(home, preset="rtx4070-12gb")  # --preset wins even without a GPU
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await settle(pilot, lambda: screen.gpus is not None)
        await pilot.pause()
        assert screen.base.name == "rtx4070-12gb"


@pytest.mark.parametrize("size", SIZES)
async def test_the_last_preset_started_is_where_the_next_screen_starts(home: Path, size) -> None:
    data = write_fineweb_parquet(home / "shard.parquet", synthetic_texts(20))
    app = make_app(home, data=str(data))
    async with app.run_test(size=size) as pilot:
        screen = app.screen
        await settle(pilot, lambda: screen.gpus is not None)
        screen.query_one("#presets").move_to("24gb")
        await pilot.pause()
        await pilot.press("t")
        await settle(pilot, lambda: app.started_with is not None)
        assert app.started_with.preset.name == "24gb"
    app = make_app(home)  # no GPU here either: the last one used still wins over cpu-tiny
    async with app.run_test(size=size) as pilot:
        screen = app.screen
        await settle(pilot, lambda: screen.gpus is not None)
        await pilot.pause()
        assert screen.base.name == "24gb"


async def test_g_and_shift_g_go_round_the_cards_both_ways(home: Path) -> None:
    app = make_app(home)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await settle(pilot, lambda: screen.gpus is not None)
        first = next_card(None)
        last = next_card(None, backwards=True)
        assert last is not None and last.name != first.name
        await pilot.press("G")
        assert screen.plan_for.name == last.name
        await pilot.press("G")
        assert screen.plan_for.name == next_card(last.name, backwards=True).name
        await pilot.press("g")
        assert screen.plan_for.name == last.name
        await pilot.press("g")  # past the last card: this machine again
        assert screen.plan_for is None
        await pilot.press("g")
        assert screen.plan_for.name == first.name
        await pilot.press("G")
        assert screen.plan_for is None


@pytest.mark.parametrize("size", SIZES)
async def test_escape_clears_the_filter_enter_keeps_it_and_the_border_says_so(home: Path, size) -> None:
    app = make_app(home, gpus=[RTX_4070])
    async with app.run_test(size=size) as pilot:
        screen = app.screen
        presets = screen.query_one("#presets")
        every = visible_names(screen)
        await pilot.press("slash", *"4070", "escape")
        assert visible_names(screen) == every and not presets.query_one("#preset-filter").display
        assert presets.border_title == "presets"
        await pilot.press("slash", *"4070", "enter")
        kept = visible_names(screen)
        assert kept != every and all("4070" in name for name in kept)
        assert "filter “4070”" in presets.border_title and "Esc clears" in presets.border_title
        await pilot.press("escape")  # from the list too
        assert visible_names(screen) == every and presets.border_title == "presets"
        await pilot.press("slash", *"4070", "enter", "r")  # another key (here: no run to continue) keeps it
        await pilot.pause()
        assert visible_names(screen) == kept and "filter “4070”" in presets.border_title
        await pilot.press("slash", *"4070d")  # a filter nothing matches: said, not an empty list
        await pilot.pause()
        options = presets.query_one("#preset-options")
        assert visible_names(screen) == [] and "0 of" in presets.border_title
        assert options.option_count == 1 and "no preset matches “4070d”" in str(options.get_option_at_index(0).prompt)
        await pilot.press("escape")
        assert visible_names(screen) == every


@pytest.mark.parametrize("size", SIZES)
async def test_every_preset_has_a_number_and_two_digits_reach_it(home: Path, size, monkeypatch) -> None:
    # Keys typed "together" by the pilot may come further apart than a person's on a loaded machine: the join
    # window is widened here; digits apart in time are checked with the clock given (below).
    monkeypatch.setattr("fwtui.widgets.preset_list.TYPE_AHEAD_SECONDS", 60.0)
    app = make_app(home, gpus=[RTX_4070])
    async with app.run_test(size=size) as pilot:
        screen = app.screen
        await settle(pilot, lambda: screen.gpus is not None)
        names = visible_names(screen)
        assert len(names) >= 12
        options = screen.query_one("#preset-options")
        twelfth = str(options.get_option_at_index(11).prompt)
        assert twelfth.lstrip().startswith("12 ") and names[11] in twelfth
        await pilot.press("1", "2")  # typed together: the 12th
        assert screen.base.name == names[11]
        await pilot.press("0")  # a lone 0: the 10th
        assert screen.base.name == names[9]
        await pilot.press("1", "0")
        assert screen.base.name == names[9]
        await pilot.press("3")
        assert screen.base.name == names[2]
        screen.query_one("#presets").type_digit("1", now=0.0)  # digits apart in time stay apart
        screen.query_one("#presets").type_digit("2", now=61.0)  # past the (widened) window
        await pilot.pause()
        assert screen.base.name == names[1]


def stopped_run(runs: Path, name: str) -> Path:
    """A run stopped at iter 41 with a checkpoint (a complete zip file, as torch.save writes)."""
    run_dir = runs / name
    run_dir.mkdir(parents=True)
    writer = EventLogWriter(run_dir)
    writer(dataclasses.replace(run_started(max_iters=6000), run_dir=str(run_dir)))
    for i in range(0, 41, 10):
        writer(step(i))
    writer(ev.Finished(time=T0 + 500, iter=41, reason="stopped", seconds=400.0))
    writer.close()
    with zipfile.ZipFile(run_dir / "ckpt.pt", "w") as archive:
        archive.writestr("data.pkl", b"")
    return run_dir


@pytest.mark.parametrize("size", SIZES)
async def test_runs_and_recent_files_never_wrap_mid_word(home: Path, size) -> None:
    names = ["rtx4070-12gb-modern-20261207-010203", "cpu-tiny-20261207-020304"]
    for name in names:
        stopped_run(home / "runs", name)
    deep = home / "datasets" / "fineweb-edu" / "sample" / "10BT" / "shards"
    deep.mkdir(parents=True)
    for shard in ("000_00000.parquet", "001_00000.parquet"):
        remember(write_fineweb_parquet(deep / shard, synthetic_texts(10)))
    app = make_app(home)
    async with app.run_test(size=size) as pilot:
        screen = app.screen
        await settle(pilot, lambda: len(screen.query_one("#runs").choices) == 2)
        await pilot.pause()
        lines = screen_lines(app)
        for name in names:
            row = next(i for i, line in enumerate(lines) if f"▶ {name}" in line)
            assert lines[row + 1].lstrip("│ ").startswith("stopped at iter 41 of 6,000")
        # The recent files: as many as there is room for (none may fit at 80x24), each one line, name first.
        recent = [line.lstrip("│ ") for line in lines if "_00000.parquet" in line]
        assert all(line.startswith(("000_00000.parquet  ", "001_00000.parquet  ")) for line in recent), recent
        rows = screen.query_one("#data-recent")
        assert rows.styles.text_wrap == "nowrap" and rows.option_count == 2
        assert {str(rows.get_option_at_index(i).prompt).split("  ")[0] for i in range(2)} == {
            "000_00000.parquet", "001_00000.parquet"}
