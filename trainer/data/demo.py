"""A demo corpus with no download: the Python standard library's own docstrings, in FineWeb's schema.

One document per module, class, function and method docstring of at least MIN_CHARS characters, headed by
its qualified name. The modules are imported in a child process: some change process state when imported
(readline sets terminal variables, warnings filters...), which must not reach the app or the tests. The
walk is sorted, so the same interpreter always yields the same file.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import os
import pkgutil
import subprocess
import sys
import warnings
from pathlib import Path

from trainer.errors import DataError

MIN_CHARS = 200
"""Shorter docstrings ("Return self.") teach little and would dominate the count."""
SKIP = frozenset({
    "antigravity", "this",  # open a browser / print the Zen at import
    "idlelib", "tkinter", "turtle", "turtledemo",  # GUI toolkits
    "test", "tests", "lib2to3", "ensurepip", "pydoc_data", "xxlimited", "xxsubtype", "msilib",
})
"""Module names (any component of a dotted name) never imported: side effects, GUI, tests, or no docs."""
CHILD_TIMEOUT_S = 300


def default_path() -> Path:
    from trainer.data.dataset import cache_root

    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return cache_root() / "demo" / f"python-{version}-stdlib-docstrings.parquet"


def build_demo_corpus(path: Path | None = None) -> Path:
    """The demo parquet at `path` (built now), or the cached one (built once per Python version)."""
    target = Path(path) if path is not None else default_path()
    if path is None and target.is_file() and target.stat().st_size > 0:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    try:
        done = subprocess.run([sys.executable, "-c", "import sys; from trainer.data.demo import write_corpus; "
                               "write_corpus(sys.argv[1])", str(tmp)], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, env=env, timeout=CHILD_TIMEOUT_S)
        if done.returncode != 0 or not tmp.is_file():
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise DataError(f"building the demo corpus at {target} failed ({last}); run `fwtui --debug --demo` "
                            "or pass --data PARQUET instead")
        os.replace(tmp, target)
    except subprocess.TimeoutExpired:
        raise DataError(f"building the demo corpus took over {CHILD_TIMEOUT_S} s; pass --data PARQUET "
                        "instead") from None
    finally:
        tmp.unlink(missing_ok=True)
    return target


def module_names() -> list[str]:
    """Public stdlib modules and their submodules, sorted, without the SKIP ones or `__main__` scripts."""
    names = set()
    for top in sorted(sys.stdlib_module_names):
        if top.startswith("_") or top in SKIP:
            continue
        names.add(top)
        module = _quiet_import(top)
        for info in pkgutil.walk_packages(getattr(module, "__path__", []) or [], prefix=f"{top}.",
                                          onerror=lambda _name: None):
            parts = info.name.split(".")
            if not any(p.startswith("_") or p in SKIP for p in parts):
                names.add(info.name)
    return sorted(names)


def _quiet_import(name: str):
    """Import with stdout/stderr and warnings swallowed; None when it fails in any way."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(name)
    except (Exception, SystemExit):  # noqa: BLE001 - platform-only and optional modules fail to import
        return None


def documents() -> list[tuple[str, str]]:
    """(qualified name, text) for every long-enough docstring, in a fixed order, without duplicates."""
    seen: set[str] = set()
    out: list[tuple[str, str]] = []

    def add(qualname: str, obj) -> None:
        try:
            doc = inspect.getdoc(obj)
        except Exception:  # noqa: BLE001 - odd objects raise from __doc__
            return
        if isinstance(doc, str) and len(doc) >= MIN_CHARS and doc not in seen:
            seen.add(doc)
            out.append((qualname, f"{qualname}\n\n{doc}"))

    for name in module_names():
        module = _quiet_import(name)
        if module is None:
            continue
        add(name, module)
        for attr, obj in sorted(vars(module).items()):
            if attr.startswith("_") or getattr(obj, "__module__", None) != name:
                continue
            if inspect.isclass(obj):
                add(f"{name}.{attr}", obj)
                for member, value in sorted(vars(obj).items()):
                    if not member.startswith("_") and callable(value):
                        add(f"{name}.{attr}.{member}", value)
            elif inspect.isfunction(obj) or inspect.isbuiltin(obj):
                add(f"{name}.{attr}", obj)
    return out


def write_corpus(path: str | Path) -> None:
    """Write the documents as a FineWeb-schema parquet (run in the child process)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    docs = documents()
    texts = [text for _, text in docs]
    try:
        from trainer.data.tokenizer import get_encoding

        encoding = get_encoding()
        counts = [len(encoding.encode_ordinary(text)) for text in texts]
    except Exception:  # noqa: BLE001 - no tokenizer here: FineWeb's token_count is then unknown (null)
        counts = [None] * len(texts)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    n = len(docs)
    table = pa.table({
        "text": pa.array(texts, pa.string()),
        "id": [f"<urn:python-{version}:{name}>" for name, _ in docs],
        "dump": [f"python-{version}-stdlib"] * n,
        "url": [f"https://docs.python.org/{version}/library/{name.split('.')[0]}.html#{name}" for name, _ in docs],
        "date": ["1970-01-01T00:00:00Z"] * n,  # fixed: the file must not change from build to build
        "file_path": [f"stdlib:{name}" for name, _ in docs],
        "language": ["en"] * n,
        "language_score": pa.array([1.0] * n, pa.float64()),
        "token_count": pa.array(counts, pa.int64()),
    })
    pq.write_table(table, path, row_group_size=1000, compression="snappy")
