"""What to fetch from the Hugging Face hub: dataset shortcuts, subsets, and the listing of their files.

`fineweb` and `fineweb-edu` name HuggingFaceFW's repositories; a subset is one of their folders
(`sample-10BT` is `sample/10BT`, `CC-MAIN-2013-20` is `data/CC-MAIN-2013-20`). Any other OWNER/NAME
dataset is fetched by a glob over its paths (`--files 'data/*.parquet'`). The listing comes from the hub's
tree API through huggingface_hub (the commit is pinned first, so every file comes from one revision), and
carries each file's size and the sha256 the hub publishes for it (its LFS oid).

Every way the hub can say no (offline, no such repo, subset, revision or file, gated) becomes one DataError
line naming it and what to do: a mirror through HF_ENDPOINT, or a parquet path already on disk.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass

from trainer.errors import DataError

DATASETS = {"fineweb": "HuggingFaceFW/fineweb", "fineweb-edu": "HuggingFaceFW/fineweb-edu"}
"""Shortcuts a user types for the repositories they want (REFERENCE.md §13)."""
DEFAULT_SUBSET = "sample-10BT"
DEFAULT_ENDPOINT = "https://huggingface.co"
SUBSET_ROOTS = ("sample", "data")
"""The folders of a FineWeb repository that hold subsets: sample/10BT..., data/CC-MAIN-..."""
TOKENS_PER_PARQUET_BYTE = 10_371_489_838 / 30_639_384_917
"""GPT-2 tokens per byte of FineWeb parquet: sample/10BT's token_count sum over its 15 files' bytes
(REFERENCE.md §13), 0.339. Used only for an estimate, labelled as one, of files not yet on disk."""
NAMED_TOKENS = {"10BT": 10_371_489_838}
"""Subsets whose exact token count the repository publishes (sample/10BT's token_count sum, §13)."""
NO_NETWORK_HINT = ("set HF_ENDPOINT to a mirror (e.g. HF_ENDPOINT=https://hf-mirror.com), or pass a parquet "
                   "file or folder already on disk to --data")


@dataclass(frozen=True)
class HubFile:
    path: str
    """Path inside the repository, e.g. sample/10BT/000_00000.parquet."""
    size: int
    """Bytes, as the hub lists them."""
    sha256: str | None
    """The LFS oid the hub publishes (None for a small file kept in git: then only the size is checked)."""


@dataclass(frozen=True)
class FetchPlan:
    """Which files of which commit of which repository: everything fetch needs, and --list shows."""

    repo: str
    revision: str
    """The commit sha the revision pointed at when listed: every file comes from this one."""
    folder: str
    """The folder in the repository that holds the files ("" for the root or a glob across folders)."""
    files: list[HubFile]
    endpoint: str
    available: int = 0
    """Files matching in the folder (before --shards took the first N)."""
    named_tokens: int | None = None
    """Tokens the repository publishes for the whole subset, when it does."""
    ref: str = "main"
    """The revision as asked for (a branch, tag or commit), recorded in the hub cache's refs/."""

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def estimated_tokens(self) -> int:
        """≈ GPT-2 tokens of the chosen files: bytes x TOKENS_PER_PARQUET_BYTE (an estimate)."""
        return round(self.total_bytes * TOKENS_PER_PARQUET_BYTE)


def endpoint() -> str:
    """The hub's address: HF_ENDPOINT (a mirror) when set, read now (huggingface_hub reads it at import)."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def repo_of(dataset: str) -> str:
    """The repository id of a shortcut, or OWNER/NAME as given; one line when it is neither."""
    if dataset in DATASETS:
        return DATASETS[dataset]
    if dataset.count("/") == 1 and all(dataset.split("/")):
        return dataset
    raise DataError(f"unknown dataset {dataset!r}: use {' or '.join(DATASETS)}, or a hub dataset as OWNER/NAME")


def subset_folder(subset: str) -> str:
    """sample-10BT -> sample/10BT; CC-MAIN-2013-20 -> data/CC-MAIN-2013-20; a path with / as it is."""
    subset = subset.strip("/")
    if "/" in subset:
        return subset
    if subset.startswith("sample-"):
        return "sample/" + subset[len("sample-"):]
    return "data/" + subset


def folder_subset(folder: str) -> str:
    """The inverse of subset_folder, for listing subsets in the words a user types."""
    root, _, name = folder.partition("/")
    return f"sample-{name}" if root == "sample" else name if root == "data" else folder


def offline_problem() -> str | None:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return f"HF_HUB_OFFLINE is set, and fetch needs the hub: unset HF_HUB_OFFLINE, or {NO_NETWORK_HINT}"
    return None


def explain(err: BaseException, repo: str, what: str) -> DataError:
    """One line for anything huggingface_hub or the network raised while asking about `what`."""
    from huggingface_hub import errors as hub

    where = endpoint()
    if isinstance(err, hub.OfflineModeIsEnabled):
        return DataError(offline_problem() or f"huggingface_hub is in offline mode; {NO_NETWORK_HINT}")
    if isinstance(err, hub.GatedRepoError):
        return DataError(f"{repo} is gated: accept its terms on its page at {where}, then set HF_TOKEN (or run "
                         "`hf auth login`) and fetch again")
    if isinstance(err, hub.RepositoryNotFoundError):
        return DataError(f"dataset {repo} does not exist on {where} (or is private: set HF_TOKEN); check the "
                         f"name (e.g. {DATASETS['fineweb']}), or pass a parquet path already on disk to --data")
    if isinstance(err, hub.RevisionNotFoundError):
        return DataError(f"{repo} has no revision {what}; use main or a commit of the repository")
    if isinstance(err, (hub.EntryNotFoundError, hub.RemoteEntryNotFoundError)):
        return DataError(f"{repo} has no {what} on {where}; list what it holds with `fwtui fetch "
                         f"{_shortcut(repo)} --list`")
    if isinstance(err, hub.HfHubHTTPError):
        status = getattr(getattr(err, "response", None), "status_code", "an error")
        return DataError(f"the hub at {where} answered {status} for {what} of {repo}; try again later, or "
                         f"{NO_NETWORK_HINT}")
    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    return DataError(f"cannot reach the hub at {where} ({reason}); check the network, or {NO_NETWORK_HINT}")


def _shortcut(repo: str) -> str:
    return next((name for name, rid in DATASETS.items() if rid == repo), repo)


def _api():
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint())


def _guarded(call, repo: str, what: str):
    """Run one hub call; anything it raises (HTTP, transport, offline) becomes explain()'s one line."""
    try:
        return call()
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - huggingface_hub and httpx raise many types: each gets a line
        raise explain(err, repo, what) from None


def pin_revision(repo: str, revision: str = "main") -> str:
    """The commit sha `revision` points at now (/api/datasets/{repo}/revision/{revision})."""
    problem = offline_problem()
    if problem:
        raise DataError(problem)
    info = _guarded(lambda: _api().dataset_info(repo, revision=revision), repo, revision)
    if not info.sha:
        raise DataError(f"the hub at {endpoint()} gave no commit for {repo}@{revision}; try again, or "
                        f"{NO_NETWORK_HINT}")
    return info.sha


def list_files(repo: str, commit: str, folder: str = "") -> list[HubFile]:
    """Every file under `folder` at `commit`, sorted by path, with sizes and published sha256."""
    from huggingface_hub.hf_api import RepoFile

    what = f"folder {folder}" if folder else "files"

    def listing():
        return list(_api().list_repo_tree(repo, folder or None, recursive=True, revision=commit,
                                          repo_type="dataset"))

    entries = _guarded(listing, repo, what)
    files = [HubFile(e.path, e.size, e.lfs.sha256 if e.lfs else None) for e in entries if isinstance(e, RepoFile)]
    return sorted(files, key=lambda f: f.path)


def list_subsets(repo: str, commit: str) -> list[tuple[str, int, int]]:
    """(subset name, files, bytes) of each folder under sample/ and data/ that holds parquet files."""
    found: dict[str, list[int]] = {}
    for root in SUBSET_ROOTS:
        try:
            files = list_files(repo, commit, root)
        except DataError as err:
            if "has no folder" in str(err):
                continue
            raise
        for f in files:
            if f.path.endswith(".parquet"):
                tally = found.setdefault(folder_subset(f.path.rsplit("/", 1)[0]), [0, 0])
                tally[0] += 1
                tally[1] += f.size
    return [(name, n, size) for name, (n, size) in sorted(found.items())]


def plan_fetch(dataset: str, *, subset: str | None = None, shards: int | None = None, files: str | None = None,
               revision: str = "main") -> FetchPlan:
    """Resolve what to fetch: a shortcut's subset (first `shards` files), or OWNER/NAME's files matching a glob."""
    repo = repo_of(dataset)
    if shards is not None and shards < 1:
        raise DataError(f"--shards {shards}: fetch at least 1 shard")
    commit = pin_revision(repo, revision)
    if files:
        folder = _glob_root(files)
        listed = [f for f in list_files(repo, commit, folder) if fnmatch.fnmatchcase(f.path, files)]
        if not listed:
            raise DataError(f"no file of {repo} matches {files!r}; list its files with `fwtui fetch {dataset} "
                            "--list`, and quote the pattern in the shell")
        named = None
    else:
        if subset is None and dataset not in DATASETS:
            raise DataError(f"say which files of {repo} to fetch: --files 'data/*.parquet' (or --subset FOLDER)")
        folder = subset_folder(subset or DEFAULT_SUBSET)
        listed = [f for f in list_files(repo, commit, folder) if f.path.endswith(".parquet")]
        if not listed:
            raise DataError(f"{repo} folder {folder} holds no parquet files; list the subsets with `fwtui fetch "
                            f"{dataset} --list`")
        named = NAMED_TOKENS.get(folder.rsplit("/", 1)[-1]) if folder.startswith("sample/") else None
    available = len(listed)
    chosen = listed[:shards] if shards else listed
    return FetchPlan(repo=repo, revision=commit, folder=folder, files=chosen, endpoint=endpoint(),
                     available=available, named_tokens=named, ref=revision)


def _glob_root(pattern: str) -> str:
    """The longest folder of a glob without wildcards: what the tree listing needs to cover."""
    parts = pattern.strip("/").split("/")
    fixed = []
    for part in parts[:-1]:
        if any(ch in part for ch in "*?["):
            break
        fixed.append(part)
    return "/".join(fixed)
