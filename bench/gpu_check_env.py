"""The env stage of bench/gpu_check.sh: what the GPU machine runs, and that the engine needs no console.

    python bench/gpu_check_env.py [--imports-only]

Imports every engine module the GPU check uses, and the bench scripts it runs, with textual, rich,
plotext and fwtui made unimportable (the GPU machine has none of them, and trainer/ must never need them).
Without --imports-only it then prints torch's version, the CUDA device (name, memory, bf16, capability)
and `nvidia-smi`'s one-line summary, and exits 1 when no CUDA device is visible.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FORBIDDEN = ("textual", "textual_plotext", "rich", "plotext", "fwtui")
ENGINE_MODULES = ("trainer.runs.launch", "trainer.train.loop", "trainer.plan.batch_finder", "trainer.model.sampling", "trainer.plan.memory",
                  "trainer.plan.planner", "trainer.model.precision", "trainer.observe.hardware", "trainer.config")
BENCH_SCRIPTS = ("bench/train.py", "bench/hellaswag.py", "bench/calibrate.py", "bench/emulate_12gb.py")


class _Forbid:
    """A meta-path finder that refuses the console's packages, so an import of one fails loudly here."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            raise ImportError(f"{name} was imported, and the GPU machine has no {name.split('.')[0]}")
        return None


def check_imports() -> list[str]:
    """The problems found: one line each (empty when the engine and the bench scripts import cleanly)."""
    sys.meta_path.insert(0, _Forbid())
    problems = []
    for name in ENGINE_MODULES:
        try:
            importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 - each problem is a line of the report
            problems.append(f"import {name}: {type(err).__name__}: {err}")
    for script in BENCH_SCRIPTS:
        spec = importlib.util.spec_from_file_location(f"gpu_check_{Path(script).stem}", ROOT / script)
        try:
            spec.loader.exec_module(importlib.util.module_from_spec(spec))  # top level only: main() not run
        except Exception as err:  # noqa: BLE001
            problems.append(f"{script}: {type(err).__name__}: {err}")
    return problems


def describe_device() -> int:
    import torch

    print(f"python {sys.version.split()[0]} · torch {torch.__version__} · CUDA build {torch.version.cuda}")
    if not torch.cuda.is_available():
        print("no CUDA device is visible: the GPU stages cannot run here")
        return 1
    props = torch.cuda.get_device_properties(0)
    print(f"device 0: {props.name} · {props.total_memory / 2**30:.1f} GiB · compute capability "
          f"{props.major}.{props.minor} · bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'} · "
          f"{torch.cuda.device_count()} visible")
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,power.limit", "--format=csv,noheader"]
        result = subprocess.run(query, capture_output=True, text=True, timeout=10)
        print(f"nvidia-smi: {result.stdout.strip() or result.stderr.strip()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imports-only", action="store_true", help="check the imports and stop (no GPU needed)")
    args = parser.parse_args(argv)
    problems = check_imports()
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        return 1
    print(f"imports: {len(ENGINE_MODULES)} engine modules and {len(BENCH_SCRIPTS)} bench scripts, "
          f"without {', '.join(FORBIDDEN)}")
    return 0 if args.imports_only else describe_device()


if __name__ == "__main__":
    sys.exit(main())
