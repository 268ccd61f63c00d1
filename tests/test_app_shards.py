"""The data panel with several shards: a folder's files listed with exact token counts (read on a worker),
space ticks which to use and the plan sums them; "fetch FineWeb" downloads from a hub on 127.0.0.1 and picks
the result."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hub_server import FakeHub
from tests.conftest import synthetic_texts, write_fineweb_parquet
from tests.setup_helpers import click_on, make_app, settle
from fwtui.widgets.file_picker import FilePicker
from fwtui.widgets.shard_list import ShardList

ROWS = 40


def shards(folder: Path, n: int = 3) -> list[Path]:
    """n FineWeb-schema files whose token_count is 100 + i for every row of file i."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        path = write_fineweb_parquet(folder / f"{i:03d}_00000.parquet", synthetic_texts(ROWS, seed=i), 20)
        table = pq.read_table(path).set_column(8, "token_count", pa.array([100 + i] * ROWS, pa.int64()))
        pq.write_table(table, path, row_group_size=20)
        out.append(path)
    return out


def prepared(*indices: int) -> int:
    """What the plan counts for those files: the training split (trainer.data.train_split) of token_count's
    sum plus an <|endoftext|> a document."""
    from trainer.data.train_split import expected_val_tokens

    total = sum((100 + i) * ROWS + ROWS for i in indices)
    return total - expected_val_tokens(total, 0.0005)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_a_folders_shards_are_listed_with_counts_and_space_ticks_the_plan(home: Path, size) -> None:
    folder = home / "fw"
    files = shards(folder)
    app = make_app(home, preset="cpu-tiny", data=str(folder))
    async with app.run_test(size=size) as pilot:
        shard_list = app.screen.query_one(ShardList)
        plan = app.screen.query_one("#plan")
        await settle(pilot, lambda: len(shard_list.counts) == 3)
        assert shard_list.display and shard_list.selected == [str(p) for p in files]
        assert [shard_list.counts[i] for i in range(3)] == [f"{(100 + i) * ROWS:,} tokens" for i in range(3)]
        await settle(pilot, lambda: plan.plan is not None and plan.plan.dataset_tokens == prepared(0, 1, 2))
        shard_list.focus()
        shard_list.highlighted = 1
        await pilot.press("space")  # untick 001
        expected = os.pathsep.join(str(files[i]) for i in (0, 2))
        await settle(pilot, lambda: app.screen.data == expected)
        assert app.screen.query_one(FilePicker).path_text == expected
        await settle(pilot, lambda: plan.plan is not None and plan.plan.dataset_tokens == prepared(0, 2))


async def test_picking_one_file_lists_its_siblings_with_only_it_ticked(home: Path) -> None:
    files = shards(home / "fw")
    app = make_app(home, preset="cpu-tiny")
    async with app.run_test(size=(120, 40)) as pilot:
        app.screen.query_one(FilePicker).set_path(str(files[2]))
        shard_list = app.screen.query_one(ShardList)
        await settle(pilot, lambda: shard_list.display and len(shard_list.counts) == 3)
        assert shard_list.selected == [str(files[2])]
        shard_list.focus()
        shard_list.highlighted = 0
        await pilot.press("space")
        await settle(pilot, lambda: app.screen.data == os.pathsep.join(map(str, (files[0], files[2]))))


@pytest.fixture
def hub(tmp_path, monkeypatch):
    source = shards(tmp_path / "hub-files", 3)
    files = {f"sample/10BT/{p.name}": p.read_bytes() for p in source}
    with FakeHub({"HuggingFaceFW/fineweb": files}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
        for name in ("HF_HUB_CACHE", "HF_HUB_OFFLINE", "HF_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        yield server


async def test_fetch_finewebs_shards_from_the_data_panel_and_select_them(home: Path, hub) -> None:
    from fwtui.screens.fetch import FetchScreen

    app = make_app(home, preset="cpu-tiny")
    async with app.run_test(size=(80, 24)) as pilot:
        app.screen.query_one(FilePicker).open_fetch()
        await settle(pilot, lambda: isinstance(app.screen, FetchScreen) and app.screen.query("#fetch-go"))
        dialog = app.screen
        dialog.query_one("#fetch-shards").value = "2"
        dialog.query_one("#fetch-dir").value = str(home / "data")
        status = dialog.query_one("#fetch-status")
        await click_on(pilot, "#fetch-list")
        # The listing shows before its worker's end is handled, and a press while busy is ignored: wait for both.
        await settle(pilot, lambda: "first 2 of 3 file(s)" in str(status.render()) and not dialog.busy)
        await click_on(pilot, "#fetch-go")  # the listing's lines have just moved the buttons
        await settle(pilot, lambda: not isinstance(app.screen, FetchScreen), shown=lambda: status.render())
        folder = home / "data" / "sample" / "10BT"
        assert dialog.result_spec == str(folder)
        shard_list = app.screen.query_one(ShardList)
        await settle(pilot, lambda: app.screen.data == str(folder) and len(shard_list.counts) == 2)
        assert shard_list.selected == [str(folder / "000_00000.parquet"), str(folder / "001_00000.parquet")]
        plan = app.screen.query_one("#plan")
        await settle(pilot, lambda: plan.plan is not None and plan.plan.dataset_tokens == prepared(0, 1))


async def test_a_fetch_that_fails_says_why_in_the_dialog(home: Path, hub) -> None:
    from fwtui.screens.fetch import FetchScreen

    app = make_app(home, preset="cpu-tiny")
    async with app.run_test(size=(80, 24)) as pilot:
        app.screen.query_one(FilePicker).open_fetch()
        await settle(pilot, lambda: isinstance(app.screen, FetchScreen) and app.screen.query("#fetch-go"))
        dialog = app.screen
        dialog.query_one("#fetch-subset").value = "CC-MAIN-1999-01"
        await click_on(pilot, "#fetch-go")
        status = dialog.query_one("#fetch-status")
        await settle(pilot, lambda: "has no folder data/CC-MAIN-1999-01" in str(status.render()))
        assert isinstance(app.screen, FetchScreen) and not dialog.busy
        await pilot.press("escape")
        await settle(pilot, lambda: not isinstance(app.screen, FetchScreen))
