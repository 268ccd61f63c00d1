"""Downloading a FetchPlan's files: resumable, checked by sha256, into a folder or the hub's own cache.

Each file is written to `NAME.incomplete` next to where it will live and renamed into place only after its
sha256 matches the LFS oid the hub publishes, so a file under its real name is always complete and checked;
a mismatch deletes the download and says so. The bytes travel through huggingface_hub's `http_get` (its
headers, tokens, timeouts, and its in-process retries that resume a cut connection with a Range request);
the `.incomplete` file is ours and outlives the process, so a fetch interrupted by Ctrl-C, a crash or a
reboot continues from its last byte (huggingface_hub 2.x deletes its own temporary file on failure).

Without --dir the files go into the hub's cache (HF_HUB_CACHE, or HF_HOME/hub) in its own layout:
blobs/<sha256>, snapshots/<commit>/<path> linking to the blob, refs/<revision>; other tools find them there.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from trainer.data.hub_files import FetchPlan, HubFile, NO_NETWORK_HINT, endpoint, explain
from trainer.errors import DataError

PARTIAL_SUFFIX = ".incomplete"
"""Never .parquet at the end: no reader of a folder takes a half-downloaded file for a shard."""
PROGRESS_INTERVAL = 0.25
"""Seconds between progress reports (a few a second)."""
HASH_BLOCK = 8 << 20
"""Bytes read at a time when hashing what an earlier, interrupted fetch left."""


@dataclass(frozen=True)
class FetchProgress:
    """Where a fetch stands: the file being downloaded and the whole, in bytes."""

    file: str
    """Path in the repository of the file being downloaded."""
    index: int
    """1-based position of that file among the files to fetch."""
    count: int
    file_done: int
    file_total: int
    done: int
    """Bytes on disk of all files to fetch (resumed and skipped ones included)."""
    total: int
    rate: float
    """Bytes per second received by this fetch (resumed bytes excluded)."""
    eta_seconds: float | None
    finished: bool = False
    """True on the report sent once a file is checked and in place."""


@dataclass(frozen=True)
class FetchResult:
    paths: list[Path]
    """The local files, in the plan's order."""
    spec: str
    """What to pass to --data: the folder when it holds exactly these parquet files, the file when one,
    else the files joined by os.pathsep."""
    downloaded: int
    """Bytes received by this fetch."""
    reused: int
    """Files already complete on disk before it."""


class FetchCancelled(DataError):
    """The caller stopped the fetch; the .incomplete files stay to resume from."""


def hub_cache() -> Path:
    """HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub: read now, as the hub's tools do."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def local_paths(plan: FetchPlan, dest_dir: Path | None) -> list[tuple[Path, Path]]:
    """(final path, path of the download in progress) for each file."""
    out = []
    for f in plan.files:
        if dest_dir is not None:
            final = dest_dir / f.path
            out.append((final, final.with_name(final.name + PARTIAL_SUFFIX)))
        else:
            repo_dir = hub_cache() / ("datasets--" + plan.repo.replace("/", "--"))
            blob = repo_dir / "blobs" / (f.sha256 or f"size-{f.size}-{f.path.replace('/', '--')}")
            out.append((repo_dir / "snapshots" / plan.revision / f.path, blob.with_name(blob.name + PARTIAL_SUFFIX)))
    return out


class _HashingFile:
    """The file object http_get writes to: hashes and counts each chunk, and stops when cancelled."""

    def __init__(self, f, hasher, on_bytes: Callable[[int], None], cancel: threading.Event | None) -> None:
        self._f, self.hasher, self._on_bytes, self._cancel = f, hasher, on_bytes, cancel
        self.rewound = False

    def write(self, chunk: bytes) -> int:
        if self._cancel is not None and self._cancel.is_set():
            raise FetchCancelled("fetch stopped; run it again to continue where it stopped")
        self._f.write(chunk)
        self.hasher.update(chunk)
        self._on_bytes(len(chunk))
        return len(chunk)

    def tell(self) -> int:
        return self._f.tell()

    def seek(self, *args) -> int:
        self.rewound = True  # the server ignored the Range: http_get starts over, so must the hash
        return self._f.seek(*args)

    def truncate(self, *args) -> int:
        return self._f.truncate(*args)

    def flush(self) -> None:
        self._f.flush()


def _hash_existing(f, size: int):
    hasher = hashlib.sha256()
    f.seek(0)
    left = size
    while left > 0:
        block = f.read(min(HASH_BLOCK, left))
        if not block:
            break
        hasher.update(block)
        left -= len(block)
    f.seek(size)
    return hasher


def _sha256_of(path: Path) -> str:
    with open(path, "rb") as f:
        return _hash_existing(f, path.stat().st_size).hexdigest()


def _download(url: str, file: HubFile, final: Path, partial: Path, on_bytes, cancel) -> None:
    """One file to `partial` (continuing what is there), checked, then renamed to `final`."""
    from huggingface_hub import get_hf_file_metadata
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers
    from huggingface_hub.utils.tqdm import silent_tqdm

    partial.parent.mkdir(parents=True, exist_ok=True)
    headers = build_hf_headers()
    try:
        meta = get_hf_file_metadata(url, headers=headers, endpoint=endpoint())
    except Exception as err:  # noqa: BLE001 - explain() names each kind
        raise explain(err, url, f"file {file.path}") from None
    location = meta.location or url
    if urlparse(location).netloc != urlparse(url).netloc:
        headers.pop("authorization", None)  # a CDN gets no token, as huggingface_hub does
    with open(partial, "r+b" if partial.exists() else "w+b") as f:
        have = f.seek(0, os.SEEK_END)
        if have > file.size:
            f.truncate(0)
            have = f.seek(0)
        writer = _HashingFile(f, _hash_existing(f, have), on_bytes, cancel)
        try:
            http_get(location, writer, resume_size=have, headers=headers, expected_size=file.size,
                     displayed_filename=file.path, tqdm_class=silent_tqdm)
        except FetchCancelled:
            raise
        except Exception as err:  # noqa: BLE001 - transport errors after http_get's own retries
            f.flush()
            raise DataError(f"{file.path} stopped at {f.tell():,} of {file.size:,} bytes "
                            f"({str(err).splitlines()[0] if str(err) else type(err).__name__}); fetch again to "
                            f"continue from there, or {NO_NETWORK_HINT}") from None
        f.flush()
        os.fsync(f.fileno())
        digest = writer.hasher.hexdigest() if not writer.rewound else None
    if file.sha256 is not None:
        digest = digest or _sha256_of(partial)
        if digest != file.sha256:
            partial.unlink(missing_ok=True)
            raise DataError(f"{file.path}: its sha256 {digest[:16]}... is not the {file.sha256[:16]}... the hub "
                            "publishes for it; the download was deleted. Fetch again (a mirror may serve a "
                            "damaged copy: try another HF_ENDPOINT)")
    elif partial.stat().st_size != file.size:
        partial.unlink(missing_ok=True)
        raise DataError(f"{file.path} arrived with {partial.stat().st_size:,} bytes, not {file.size:,}; fetch again")
    os.replace(partial, final)  # the same folder: a file under its final name is always whole and checked


def _place_in_cache(plan: FetchPlan, final: Path, blob: Path) -> None:
    """Link snapshots/<commit>/<path> to the blob and record refs, the hub cache's layout."""
    final.parent.mkdir(parents=True, exist_ok=True)
    link = os.path.relpath(blob, final.parent)
    tmp = final.with_name(final.name + ".link-tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(link, tmp)
    os.replace(tmp, final)


def fetch(plan: FetchPlan, dest_dir: str | Path | None = None, *,
          progress: Callable[[FetchProgress], None] | None = None,
          cancel: threading.Event | None = None) -> FetchResult:
    """Download the plan's files in order (skipping those complete on disk); returns where they are."""
    from huggingface_hub import hf_hub_url

    dest = Path(dest_dir).expanduser() if dest_dir is not None else None
    places = local_paths(plan, dest)
    total = plan.total_bytes
    state = {"done": 0, "received": 0, "file_done": 0, "last": 0.0}
    started = time.monotonic()
    reused = 0

    def report(i: int, file: HubFile, finished: bool = False) -> None:
        now = time.monotonic()
        if not finished and now - state["last"] < PROGRESS_INTERVAL:
            return
        state["last"] = now
        elapsed = now - started
        rate = state["received"] / elapsed if elapsed > 0 else 0.0
        eta = (total - state["done"]) / rate if rate > 0 else None
        if progress is not None:
            progress(FetchProgress(file.path, i + 1, len(plan.files), state["file_done"], file.size, state["done"],
                                   total, rate, eta, finished))

    for i, (file, (final, partial)) in enumerate(zip(plan.files, places)):
        blob = partial.with_name(partial.name[:-len(PARTIAL_SUFFIX)])
        if _complete(final, file) or (dest is None and _complete(blob, file)):
            if dest is None and not final.exists():
                _place_in_cache(plan, final, blob)
            reused += 1
            state["done"] += file.size
            state["file_done"] = file.size
            report(i, file, finished=True)
            continue
        before = partial.stat().st_size if partial.exists() else 0
        state["file_done"] = min(before, file.size)
        state["done"] += state["file_done"]

        def on_bytes(n: int, i=i, file=file) -> None:
            state["done"] += n
            state["received"] += n
            state["file_done"] += n
            report(i, file)

        url = hf_hub_url(plan.repo, file.path, repo_type="dataset", revision=plan.revision, endpoint=plan.endpoint)
        _download(url, file, blob if dest is None else final, partial, on_bytes, cancel)
        if dest is None:
            _place_in_cache(plan, final, blob)
        report(i, file, finished=True)
    if dest is None:
        _write_ref(plan)
    paths = [final for final, _ in places]
    return FetchResult(paths, data_spec(paths), state["received"], reused)


def _complete(path: Path, file: HubFile) -> bool:
    """A file under its final name was checked before it got that name; the size guards against an older one."""
    try:
        return path.stat().st_size == file.size
    except OSError:
        return False


def _write_ref(plan: FetchPlan) -> None:
    refs = hub_cache() / ("datasets--" + plan.repo.replace("/", "--")) / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    if plan.ref != plan.revision:  # a commit asked for by its sha needs no ref
        (refs / plan.ref).parent.mkdir(parents=True, exist_ok=True)
        (refs / plan.ref).write_text(plan.revision)


def data_spec(paths: list[Path]) -> str:
    """The folder if it holds exactly these parquet files, the one file, or the files joined by os.pathsep."""
    if len(paths) == 1:
        return str(paths[0])
    folder = paths[0].parent
    if all(p.parent == folder for p in paths):
        on_disk = {p.name for p in folder.iterdir() if p.name.endswith(".parquet")}
        if on_disk == {p.name for p in paths}:
            return str(folder)
    return os.pathsep.join(str(p) for p in paths)
