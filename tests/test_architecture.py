"""The house rules of the tree, read from the source with `ast` (nothing is imported or run).

- The engine (trainer/) never imports a UI library or the faces: textual, textual_plotext, plotext, rich, fwtui.
- Each room of the engine imports only the rooms below it (docs/ARCHITECTURE.md):
  observe < data < model < train < plan < runs, with the modules at the top of trainer/ (config.py,
  errors.py, nanogpt_config.py and what they need), which every room may import and which import only each
  other.
- Every module of trainer/ has its line in docs/ARCHITECTURE.md, in its room.
- The faces (fwtui/) import downward only: no module of fwtui/ reaches itself through its imports.
- No source file under trainer/, fwtui/, tests/ or bench/ is over 400 lines.

Every import counts, also those inside a function or under `if TYPE_CHECKING:`: a lazy import is still a
dependency a newcomer has to know about.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TRAINER = ROOT / "trainer"

# Bottom to top. A room may import a room with a lower rank, and itself.
ROOMS = ("observe", "data", "model", "train", "plan", "runs")
RANK = {room: rank for rank, room in enumerate(ROOMS, start=1)}
# trainer/<name>.py: rank 0, importable by every room; these at least (the rest is found on disk).
TOP_LEVEL = ("config", "errors", "nanogpt_config")
FORBIDDEN = ("textual", "textual_plotext", "plotext", "rich", "fwtui")
MAX_LINES = 400
SOURCE_SUFFIXES = (".py", ".sh", ".tcss")
SKIPPED_DIRS = ("__pycache__", "__snapshots__", "assets")  # generated files and the shipped tokenizer ranks


def engine_modules() -> list[Path]:
    return sorted(p for p in TRAINER.rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: Path, root: Path = ROOT) -> str:
    """trainer/train/loop.py -> 'trainer.train.loop'; trainer/plan/__init__.py -> 'trainer.plan'."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_names(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import in the file; relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]  # a module's relative imports start from its package
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            # `from trainer.observe import events` imports trainer.observe.events: name both, the room is the same
            found.append((node.lineno, name))
    return found


def room_of(module: str) -> str | None:
    """'trainer.plan.memory' -> 'plan'; 'trainer.config' -> '' (the top); not in trainer -> None."""
    parts = module.split(".")
    if parts[0] != "trainer":
        return None
    if len(parts) == 1 or (TRAINER / f"{parts[1]}.py").exists():
        return ""
    return parts[1]


def rank_of(room: str) -> int:
    return 0 if room == "" else RANK.get(room, -1)


def test_every_engine_package_is_a_known_room():
    """A new subpackage of trainer/ must take its place in the layering (here and in docs/ARCHITECTURE.md)."""
    packages = sorted(p.name for p in TRAINER.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    assert packages == sorted(ROOMS)
    top = {p.stem for p in TRAINER.glob("*.py")}
    assert set(TOP_LEVEL) <= top


def test_the_engine_imports_no_ui_library():
    bad = []
    for path in engine_modules():
        for line, name in imported_names(path):
            if name.split(".")[0] in FORBIDDEN:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert bad == [], "the engine must stay headless:\n" + "\n".join(bad)


def test_each_room_imports_only_rooms_below_it():
    bad = []
    for path in engine_modules():
        here = room_of(module_name(path))
        for line, name in imported_names(path):
            there = room_of(name)
            if there is None or there == here:
                continue
            if rank_of(there) < 0:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}: not a room of the layering")
            elif here == "" or rank_of(there) > rank_of(here):
                bad.append(f"{path.relative_to(ROOT)}:{line} ({here or 'top of trainer/'}) imports {name} "
                           f"({there}), which sits above it")
    assert bad == [], ("layering is " + " < ".join(ROOMS) + ", config/errors/nanogpt_config at the top:\n"
                       + "\n".join(bad))


def test_every_engine_module_is_on_the_map():
    """docs/ARCHITECTURE.md names each module of trainer/ in its room's list, and only those: the map is the tree."""
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    sections = {"": "**Top of `trainer/`**", **{room: f"**`{room}/`**" for room in ROOMS}}
    missing, gone = [], []
    for room, heading in sections.items():
        assert heading in doc, f"docs/ARCHITECTURE.md has no section {heading}"
        text = doc.split(heading, 1)[1].split("\n**", 1)[0]  # up to the next section's heading
        folder = TRAINER / room if room else TRAINER
        for path in sorted(folder.glob("*.py")):
            if path.name != "__init__.py" and f"- `{path.name}`" not in text:
                missing.append(str(path.relative_to(ROOT)))
        gone += [f"{room or 'top'}: {name}" for name in re.findall(r"^- `(\w+\.py)`", text, re.MULTILINE)
                 if not (folder / name).exists()]
    assert missing == [], "add a line for each to its room in docs/ARCHITECTURE.md:\n" + "\n".join(missing)
    assert gone == [], "docs/ARCHITECTURE.md names modules that are not there:\n" + "\n".join(gone)


def face_imports(root: Path = ROOT) -> dict[str, set[str]]:
    """fwtui module -> the fwtui modules it imports. `from fwtui import format` names fwtui.format (a submodule
    named in an ImportFrom is imported too); a package counts as a module (its __init__)."""
    paths = {module_name(p, root): p for p in (root / "fwtui").rglob("*.py") if "__pycache__" not in p.parts}
    graph = {}
    for name, path in paths.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found = {target for _, target in imported_names(path, root)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = next(t for line, t in imported_names(path, root) if line == node.lineno)
                found |= {f"{base}.{alias.name}" for alias in node.names}
        graph[name] = {target for target in found if target in paths and target != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Cycles of modules that import each other through any number of steps, each as a path back to where it
    started (at least one per circle); [] when every import points downward."""
    cycles: list[list[str]] = []
    done: set[str] = set()  # modules whose every import was followed to the end

    def visit(module: str, path: list[str]) -> None:
        for target in sorted(graph[module]):
            if target in path:
                cycles.append(path[path.index(target):] + [target])
            elif target not in done:
                visit(target, path + [target])
        done.add(module)

    for start in sorted(graph):
        if start not in done:
            visit(start, [start])
    return cycles


def test_the_faces_import_in_no_circle():
    """fwtui/ (commands, screens, widgets, the app) imports downward: a circle means no module of it can be read,
    tested or changed alone (issue 20: attach -> dashboard -> compare -> compared_runs -> view -> attach)."""
    graph = face_imports()
    assert len(graph) > 40 and "fwtui.format" in graph["fwtui.commands.view"]  # the walk saw the faces
    cycles = import_cycles(graph)
    assert cycles == [], "the faces import in a circle:\n" + "\n".join(" -> ".join(c) for c in cycles)


def source_files() -> list[Path]:
    files = []
    for folder in ("trainer", "fwtui", "tests", "bench"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in SOURCE_SUFFIXES and not set(SKIPPED_DIRS) & set(path.parts):
                files.append(path)
    return sorted(files)


def test_no_source_file_is_over_400_lines():
    files = source_files()
    assert len(files) > 100  # the walk found the tree
    long = [f"{p.relative_to(ROOT)}: {n} lines" for p in files
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES]
    assert long == [], f"split these by subject (at most {MAX_LINES} lines a file):\n" + "\n".join(long)


# --- the checker itself, on made-up sources: it must see what it is meant to see ---------------------------

@pytest.mark.parametrize("source, expected", [
    ("import torch", ["torch"]),
    ("from trainer.observe import events", ["trainer.observe"]),
    ("def f():\n    from trainer.runs.launch import run_training", ["trainer.runs.launch"]),
    ("from . import memory", ["trainer.plan"]),
    ("from ..train.oom import is_out_of_memory", ["trainer.train.oom"]),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import rich", ["typing", "rich"]),
])
def test_imports_are_found_and_relative_ones_resolved(tmp_path, source, expected):
    module = tmp_path / "trainer" / "plan" / "probe.py"
    module.parent.mkdir(parents=True)
    module.write_text(source, encoding="utf-8")
    assert [name for _, name in imported_names(module, root=tmp_path)] == expected


def test_a_circle_of_imports_is_found(tmp_path):
    """The cycle check on made-up faces: a lazy import inside a function and `from package import module` count."""
    faces = {"fwtui/__init__.py": "", "fwtui/a.py": "from fwtui import b",
             "fwtui/b.py": "def f():\n    from fwtui.c import thing", "fwtui/c.py": "import fwtui.a\nimport os",
             "fwtui/d.py": "from fwtui.a import x"}
    for name, source in faces.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(source, encoding="utf-8")
    graph = face_imports(tmp_path)
    assert graph["fwtui.a"] == {"fwtui", "fwtui.b"} and graph["fwtui.c"] == {"fwtui.a"} and graph["fwtui.d"] == {"fwtui.a"}
    assert import_cycles(graph) == [["fwtui.a", "fwtui.b", "fwtui.c", "fwtui.a"]]
    (tmp_path / "fwtui/c.py").write_text("import os", encoding="utf-8")
    assert import_cycles(face_imports(tmp_path)) == []


def test_rooms_rank_as_documented():
    assert room_of("trainer.config") == "" and room_of("trainer") == ""
    assert room_of("trainer.train.loop") == "train" and room_of("torch.nn") is None
    assert [rank_of(room) for room in ROOMS] == sorted(rank_of(room) for room in ROOMS)
    assert rank_of("plan") > rank_of("train") > rank_of("model") > rank_of("data") > rank_of("observe") > 0
