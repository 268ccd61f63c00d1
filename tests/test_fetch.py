"""`fwtui fetch` against a hub on 127.0.0.1 (tests/hub_server.py): listing, a cut connection resumed, a
stopped fetch continued by the next one, a corrupted file refused, the hub cache's layout, and one line for
each way the hub can say no. Never the network."""

from __future__ import annotations

import hashlib
import os
import socket
import threading

import pytest

from conftest import synthetic_texts, write_fineweb_parquet
from fwtui.cli import main as cli_main
from hub_server import COMMIT, FakeHub
from trainer.data.hub_fetch import PARTIAL_SUFFIX, FetchCancelled, fetch
from trainer.data.hub_files import plan_fetch
from trainer.data.parquet_source import resolve_paths
from trainer.data.token_count import count_tokens
from trainer.errors import DataError

REPO = "HuggingFaceFW/fineweb"


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Three small FineWeb-schema parquet files' bytes (token_count filled), ~60 kB each."""
    import pyarrow.parquet as pq

    folder = tmp_path_factory.mktemp("shards")
    out = []
    for i in range(3):
        path = write_fineweb_parquet(folder / f"{i:03d}_00000.parquet", synthetic_texts(60, seed=i))
        table = pq.read_table(path)
        table = table.set_column(8, "token_count", __import__("pyarrow").array([100 + i] * 60))
        pq.write_table(table, path, row_group_size=20)
        out.append(path.read_bytes())
    return out


@pytest.fixture
def hub(shards, tmp_path, monkeypatch):
    files = {f"sample/10BT/{i:03d}_00000.parquet": data for i, data in enumerate(shards)}
    files["data/CC-MAIN-2013-20/000_00000.parquet"] = shards[0]
    files["README.md"] = b"# fineweb\n"
    with FakeHub({REPO: files}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
        # huggingface_hub writes what it received per 10 MB chunk; these files are ~50 kB
        monkeypatch.setattr("huggingface_hub.constants.DOWNLOAD_CHUNK_SIZE", 4096)
        for name in ("HF_HUB_CACHE", "HF_HUB_OFFLINE", "HF_TOKEN", "HF_HUB_ENABLE_HF_TRANSFER"):
            monkeypatch.delenv(name, raising=False)
        yield server


def test_plan_lists_a_subset_with_sizes_and_published_sha256(hub, shards):
    plan = plan_fetch("fineweb", subset="sample-10BT", shards=2)
    assert plan.repo == REPO and plan.revision == COMMIT and plan.available == 3
    assert [f.path for f in plan.files] == ["sample/10BT/000_00000.parquet", "sample/10BT/001_00000.parquet"]
    assert [f.size for f in plan.files] == [len(shards[0]), len(shards[1])]
    assert plan.files[1].sha256 == hashlib.sha256(shards[1]).hexdigest()
    assert plan.named_tokens == 10_371_489_838  # the repository's sum for sample/10BT (REFERENCE.md §13)
    assert not any(method == "GET" and "/resolve/" in path for method, path, _ in hub.requests)  # nothing fetched


def test_list_prints_files_and_subsets_without_downloading(hub, capsys, tmp_path):
    assert cli_main(["fetch", "fineweb", "--subset", "CC-MAIN-2013-20", "--list"]) == 0
    out = capsys.readouterr().out
    assert "data/CC-MAIN-2013-20/000_00000.parquet" in out and "tokens: ≈" in out
    assert cli_main(["fetch", "fineweb", "--list"]) == 0
    out = capsys.readouterr().out
    assert "sample-10BT" in out and "CC-MAIN-2013-20" in out and "3 files" in out
    assert not (tmp_path / "hf-home").exists()


def test_fetch_into_a_folder_survives_a_cut_connection_and_prints_the_folder_last(hub, shards, tmp_path, capsys):
    hub.cut["sample/10BT/001_00000.parquet"] = 20_480  # the first GET of shard 1 stops after 5 chunks
    out_dir = tmp_path / "fw"
    assert cli_main(["fetch", "fineweb", "--subset", "sample-10BT", "--shards", "2", "--dir", str(out_dir)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    folder = out_dir / "sample" / "10BT"
    assert last == str(folder)
    assert (folder / "001_00000.parquet").read_bytes() == shards[1]
    ranges = [r for m, p, r in hub.requests if m == "GET" and p.endswith("001_00000.parquet")]
    assert ranges == [None, "bytes=20480-"]  # resumed from the byte where the connection was cut
    assert not list(folder.glob(f"*{PARTIAL_SUFFIX}"))
    assert count_tokens([last]).tokens == 60 * 100 + 60 * 101  # the folder is ready for --data


def test_a_stopped_fetch_keeps_its_partial_file_and_the_next_one_continues(hub, shards, tmp_path):
    plan = plan_fetch("fineweb", subset="sample-10BT", shards=1)
    cancel = threading.Event()

    def stop_midway(p):
        if p.file_done > 0:
            cancel.set()

    hub.cut["sample/10BT/000_00000.parquet"] = 30_000  # a pause: the stop lands before the rest arrives
    with pytest.raises(FetchCancelled):
        fetch(plan, tmp_path, progress=stop_midway, cancel=cancel)
    final = tmp_path / "sample/10BT/000_00000.parquet"
    partial = final.with_name(final.name + PARTIAL_SUFFIX)
    assert not final.exists() and 0 < partial.stat().st_size < len(shards[0])
    with pytest.raises(DataError, match="holds no .parquet files"):  # no reader takes the partial for a shard
        resolve_paths([tmp_path])
    kept = partial.stat().st_size
    result = fetch(plan, tmp_path)
    assert final.read_bytes() == shards[0] and not partial.exists()
    assert result.downloaded == len(shards[0]) - kept
    assert [r for m, p, r in hub.requests if m == "GET"][-1] == f"bytes={kept}-"
    again = fetch(plan, tmp_path)  # complete on disk: nothing asked for
    assert again.reused == 1 and again.downloaded == 0


def test_a_corrupted_file_is_refused_and_not_kept(hub, tmp_path, capsys):
    hub.corrupt.add("sample/10BT/000_00000.parquet")
    code = cli_main(["fetch", "fineweb", "--shards", "1", "--dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "sha256" in err and "deleted" in err
    assert not list((tmp_path / "sample/10BT").iterdir())  # neither the file nor its partial


def test_the_hub_cache_gets_blobs_snapshots_and_refs(hub, shards, tmp_path):
    from huggingface_hub import try_to_load_from_cache

    result = fetch(plan_fetch("fineweb", subset="sample-10BT", shards=3))
    repo_dir = tmp_path / "hf-home/hub/datasets--HuggingFaceFW--fineweb"
    snapshot = repo_dir / "snapshots" / COMMIT / "sample/10BT"
    assert result.spec == str(snapshot)
    assert os.path.islink(snapshot / "002_00000.parquet")
    assert (repo_dir / "blobs" / hashlib.sha256(shards[2]).hexdigest()).read_bytes() == shards[2]
    assert (repo_dir / "refs/main").read_text() == COMMIT
    found = try_to_load_from_cache(REPO, "sample/10BT/002_00000.parquet", repo_type="dataset",
                                   cache_dir=str(tmp_path / "hf-home/hub"))
    assert found == str(snapshot / "002_00000.parquet")  # huggingface_hub itself finds the file


def test_owner_name_with_a_files_glob(hub, tmp_path):
    plan = plan_fetch(REPO, files="data/*/*.parquet")
    assert [f.path for f in plan.files] == ["data/CC-MAIN-2013-20/000_00000.parquet"]
    assert fetch(plan, tmp_path).spec == str(tmp_path / "data/CC-MAIN-2013-20/000_00000.parquet")


@pytest.mark.parametrize("args, words", [
    (["fetch", "nobody/nothing", "--files", "*.parquet"], ["nobody/nothing does not exist", "HF_TOKEN"]),
    (["fetch", "fineweb", "--subset", "CC-MAIN-1999-01"], ["has no folder data/CC-MAIN-1999-01", "--list"]),
    (["fetch", "fineweb", "--revision", "v9"], ["no revision v9"]),
    (["fetch", REPO, "--files", "data/*.csv"], ["no file of", "matches"]),
    (["fetch", "fineweb", "--shards", "0"], ["at least 1 shard"]),
])
def test_what_does_not_exist_is_one_line_naming_it(hub, capsys, args, words):
    assert cli_main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("fwtui: error:")
    for word in words:
        assert word in err


def test_offline_or_unreachable_hub_says_what_to_do(tmp_path, monkeypatch, capsys):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert cli_main(["fetch", "fineweb", "--shards", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot reach the hub" in err and "HF_ENDPOINT" in err and "--data" in err
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert cli_main(["fetch", "fineweb", "--shards", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "HF_HUB_OFFLINE is set" in err and "--data" in err
