"""A nanoGPT config `.py` read as written, without running it.

nanoGPT's configurator `exec`s a config file in train.py's globals. fwtui never executes a file: it parses
it with `ast` and evaluates, line by line, only what such files hold:

- numbers, strings, True/False/None;
- arithmetic on numbers: + - * / // % ** and unary minus/plus (`5 * 8`, `6e-4 / 10`, `1024 * 12 * 40`),
  and + joining two strings;
- names set earlier in the same file (`lr_decay_iters = max_iters`); a name this file does not set
  (nanoGPT's train.py defaults) is refused, since fwtui cannot know what the user's train.py held.

`import` lines are not run and are named in the "ignored" line (nanoGPT's finetune_shakespeare.py imports
`time` for a wandb run name). The values of the nanoGPT keys fwtui does not use (init_from, ...)
are never needed, so one fwtui could not evaluate (`'ft-' + str(time.time())`) is ignored with its key.
Anything else (a call, an attribute, a comprehension, an f-string, an `if`) where fwtui needs the value
is one ConfigError naming file:line and what is allowed.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from trainer.errors import ConfigError

# nanoGPT's train.py keys that mean nothing here, each with why, for the one "ignored" line.
NANOGPT_IGNORED_REASONS: dict[str, str] = {
    "out_dir": "--out sets it",
    "dataset": "--data sets it",
    "init_from": "fwtui trains from scratch; --resume continues a run",
    "wandb_log": "W&B",
    "wandb_project": "W&B",
    "wandb_run_name": "W&B",
    "eval_only": "no eval-only mode",
    "backend": "one process, no DDP",
    "meta_vocab_size": "GPT-2 tokens only",
    "master_process": "one process, no DDP",
    "ddp": "one process, no DDP",
    "seed_offset": "one process, no DDP",
}
NANOGPT_IGNORED_KEYS = frozenset(NANOGPT_IGNORED_REASONS)
TRACKER_KEYS = frozenset({"wandb_log", "wandb_project", "wandb_run_name"})
"""Not run settings (kept out of RunConfig with the ignored keys) but honoured: `fwtui train` logs to Weights &
Biases when wandb_log is true and wandb is installed (trainer.observe.trackers)."""

ALLOWED = ("allowed: numbers, strings, True/False/None, + - * / // % ** on numbers, "
           "and names set earlier in this file")

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}

# A config's numbers are at most ~1e12 (tokens); this bound stops `10 ** 10 ** 10` from eating memory.
_LARGEST_INT = 10**30

# A config's strings are names and paths (PATH_MAX is 4096 bytes); this bound stops a file that doubles a string
# line after line (`s = s + s`, 41 lines reach 2 GB) from eating memory before anything is checked.
_LONGEST_STR = 4096
# nanoGPT's config files are about 1 KB; a file past this is not a config (and is not read into memory whole).
_LARGEST_FILE = 1 << 20

# What a node that is not allowed is called in the error, in the user's words.
_KIND_NAMES: dict[type, str] = {
    ast.Call: "a function call", ast.Attribute: "an attribute (x.y)", ast.JoinedStr: "an f-string",
    ast.ListComp: "a comprehension", ast.SetComp: "a comprehension", ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension", ast.Lambda: "a lambda", ast.Subscript: "indexing (x[i])",
    ast.List: "a list", ast.Tuple: "a tuple", ast.Dict: "a dict", ast.Set: "a set",
    ast.IfExp: "an if-expression", ast.Compare: "a comparison", ast.BoolOp: "and/or",
    ast.NamedExpr: "an assignment expression (:=)", ast.Await: "await", ast.Starred: "*unpacking",
}


# Where a statement is not `key = value`, what it is, in the user's words.
_STATEMENT_NAMES: dict[type, str] = {
    ast.If: "an if block", ast.For: "a for loop", ast.While: "a while loop", ast.With: "a with block",
    ast.FunctionDef: "a function definition", ast.ClassDef: "a class definition", ast.Try: "a try block",
    ast.Assign: "unpacking or assigning into x.y / x[i]", ast.Expr: "a bare expression, which nanoGPT would run",
    ast.Delete: "a del statement", ast.Assert: "an assert", ast.Global: "a global statement",
}

_UNREAD = object()  # the value of an ignored key fwtui did not evaluate


class _NotAllowed(Exception):
    """A value fwtui will not evaluate; the message says what it is (caught and given a file:line)."""


@dataclass
class NanogptFile:
    """What a nanoGPT config file sets, split into what fwtui reads and what it ignores."""

    values: dict[str, Any] = field(default_factory=dict)
    """Keys to apply, in file order (unknown keys too: the config loader refuses them with a hint)."""
    ignored: dict[str, Any] = field(default_factory=dict)
    """nanoGPT keys fwtui does not use: name -> value, or None where the value is not a literal."""
    imports: list[str] = field(default_factory=list)
    """`import` lines, not run: "import time (line 1)"."""

    @property
    def trackers(self) -> dict[str, Any]:
        """The W&B keys the file sets (TRACKER_KEYS): name -> value, None where not a literal."""
        return {name: value for name, value in self.ignored.items() if name in TRACKER_KEYS}

    def ignored_line(self, path: Path | str) -> str | None:
        """One line naming every ignored key and import, and the W&B keys `fwtui train` honours; None when
        there is nothing to say."""
        parts = []
        for name, value in self.ignored.items():
            if name in TRACKER_KEYS:
                continue
            shown = f"{name}={value!r}" if name == "init_from" and value is not None else name
            parts.append(f"{shown} ({NANOGPT_IGNORED_REASONS[name]})")
        parts += [f"{text}, not run" for text in self.imports]
        wandb = ", ".join(f"{k}={v!r}" if v is not None else k for k, v in self.trackers.items())
        line = f"{path}: nanoGPT settings fwtui does not use, ignored: " + ", ".join(parts) if parts else ""
        if wandb:
            line += ("; " if line else f"{path}: ") + f"W&B settings honoured by `fwtui train`: {wandb}"
        return line or None


def _evaluate(node: ast.expr, known: dict[str, Any]) -> Any:
    """The value of one right-hand side; raises _NotAllowed naming the first thing that is not allowed."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, str):
            return _checked_str(node.value)
        if isinstance(node.value, (bool, int, float)) or node.value is None:
            return node.value
        raise _NotAllowed(f"{type(node.value).__name__} literal {node.value!r}")
    if isinstance(node, ast.Name):
        if known.get(node.id, None) is _UNREAD:
            raise _NotAllowed(f"the value of {node.id} is not read (an ignored key)")
        if node.id in known:
            return known[node.id]
        raise _NotAllowed(f"{node.id} is not set earlier in this file")
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        operand = _evaluate(node.operand, known)
        _check_number(operand, node)
        return _UNARY[type(node.op)](operand)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left, known), _evaluate(node.right, known)
        if isinstance(node.op, ast.Add) and isinstance(left, str) and isinstance(right, str):
            return _checked_str(left, right)
        _check_number(left, node)
        _check_number(right, node)
        if isinstance(node.op, ast.Pow) and isinstance(right, int) and abs(right) > 128:
            raise _NotAllowed(f"an exponent of {right} (at most 128)")
        try:
            result = _BINARY[type(node.op)](left, right)
        except (ArithmeticError, ValueError) as err:  # 1 / 0, 1e308 ** 2, (-8) ** 0.5 ...
            raise _NotAllowed(f"arithmetic that fails ({err})") from None
        if isinstance(result, complex) or (isinstance(result, int) and abs(result) > _LARGEST_INT):
            raise _NotAllowed(f"a result out of range ({result!r:.40})")
        return result
    if isinstance(node, (ast.UnaryOp, ast.BinOp)):
        raise _NotAllowed(f"the operator {type(node.op).__name__}")
    raise _NotAllowed(_KIND_NAMES.get(type(node), f"a {type(node).__name__} expression"))


def _checked_str(*parts: str) -> str:
    """The parts joined, or _NotAllowed before a string past _LONGEST_STR is built."""
    length = sum(map(len, parts))
    if length > _LONGEST_STR:
        raise _NotAllowed(f"a string of {length:,} characters (at most {_LONGEST_STR:,})")
    return "".join(parts)


def _check_number(value: Any, node: ast.expr) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _NotAllowed(f"arithmetic on {value!r} (numbers only; strings may only be joined with +)")


def _targets(node: ast.stmt) -> list[str] | None:
    """The names a `key = value` (or `a = b = value`, `key: T = value`) statement sets, else None."""
    if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
        return [t.id for t in node.targets]  # type: ignore[attr-defined]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
        return [node.target.id]
    if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return None


def _value_node(node: ast.stmt) -> ast.expr:
    """The right-hand side; `x += 1` is read as `x = x + 1`."""
    if isinstance(node, ast.AugAssign):
        return ast.BinOp(left=ast.Name(id=node.target.id, ctx=ast.Load()), op=node.op, right=node.value)
    return node.value  # type: ignore[attr-defined, return-value]


def read_nanogpt_py(path: Path) -> NanogptFile:
    """A nanoGPT config `.py` as key/values, evaluated as the module docstring says; nothing is executed."""
    try:
        with open(path, "rb") as f:
            raw = f.read(_LARGEST_FILE + 1)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read it ({err.strerror})") from None
    if len(raw) > _LARGEST_FILE:
        raise ConfigError(f"{path}: larger than {_LARGEST_FILE >> 20} MB, which no nanoGPT config is; pass the "
                          "config file itself") from None
    try:
        source = raw.decode("utf-8")
        tree = ast.parse(source, filename=str(path))
    except (SyntaxError, UnicodeDecodeError, ValueError) as err:
        raise ConfigError(f"{path}: not a readable Python config ({err})") from None
    except (RecursionError, MemoryError):
        raise ConfigError(f"{path}: an expression nested too deeply to read; write the value itself") from None
    found = NanogptFile()
    known: dict[str, Any] = {}  # every name set so far, ignored keys included (a later line may use them)
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.imports.append(f"{ast.unparse(node)} (line {node.lineno})")
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue  # a docstring or a bare string: a comment
        names = _targets(node)
        if names is None:
            what = _STATEMENT_NAMES.get(type(node), f"a {type(node).__name__} statement")
            raise ConfigError(f"{path}:{node.lineno}: {ast.unparse(node).splitlines()[0][:60]!r} is {what}; "
                              f"fwtui reads only `key = value` lines and never runs the file ({ALLOWED})")
        try:
            value = _evaluate(_value_node(node), known)
        except RecursionError:
            raise ConfigError(f"{path}:{node.lineno}: {names[0]}: an expression nested too deeply to read; "
                              "write the value itself") from None
        except _NotAllowed as why:
            if all(name in NANOGPT_IGNORED_KEYS for name in names):
                for name in names:  # nanoGPT-only keys: their value is never needed
                    found.ignored[name] = None
                    known[name] = _UNREAD
                continue
            raise ConfigError(f"{path}:{node.lineno}: {names[0]} = {ast.unparse(_value_node(node))[:60]}: "
                              f"{why}; fwtui never runs the file ({ALLOWED})") from None
        for name in names:
            known[name] = value
            if name in NANOGPT_IGNORED_KEYS:
                found.ignored[name] = value
            elif not name.startswith("_"):  # `_helper = 12`: a name for later lines, not a setting
                found.values[name] = value
    return found


__all__ = ["NANOGPT_IGNORED_KEYS", "NANOGPT_IGNORED_REASONS", "TRACKER_KEYS", "NanogptFile", "read_nanogpt_py"]
