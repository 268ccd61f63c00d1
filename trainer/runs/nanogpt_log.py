"""A nanoGPT stdout log (REFERENCE.md section 7) read into our events, so the same dashboard shows it.

nanoGPT prints, in this order within one loop iteration N:
    step N: train loss 5.4383, val loss 5.5055        (every eval_interval, at the top of iteration N)
    saving checkpoint to out-fineweb                  (after an eval that improved, or always_save_checkpoint)
    iter N: loss 6.4872, time 9337.04ms, mfu 15.38%    (every log_interval, after the optimizer step)
`time` is the wall time since the previous iteration ended, so an evaluation and its checkpoint land in the
`time` of the iteration that follows the `step N:` line (the 29 s vs 9.3 s pattern). `mfu` is nanoGPT's
running average against the A100's 312 TFLOP/s, and -100.00% for the first iterations (not measured yet).
Before the loop come the config echo (`key = value` lines, `Overriding config with FILE:`,
`Overriding: key = value`), `tokens per iteration will be: 524,288` and `number of parameters: 123.59M`.

Real logs carry stray characters (`33iter 7800:`), ANSI colour codes, CRLF and `\\r` progress lines, and a
last line cut off when the log was copied mid-write; all are tolerated. The log has no timestamps: event
times are synthesized from the cumulative iteration times, starting at `start_time`.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.config import FIELD_NAMES, RunConfig, _coerce
from trainer.errors import ConfigError, DataError
from trainer.observe.events import CheckpointSaved, Eval, Event, Finished, RunStarted, Step
from trainer.model.formulas import figures_for

NANOGPT_PEAK_FLOPS = 312e12
"""The constant in nanoGPT's `estimate_mfu`: an A100's bf16 peak. Every printed MFU is a fraction of it."""

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?nan|[-+]?inf"
# No word boundary before `iter`/`step`: stray characters glued to the front (`33iter 7800:`) are common.
ITER_RE = re.compile(
    rf"iter (\d+): loss ({_NUM}), time ({_NUM})ms(?:, mfu ({_NUM})%)?\s*$", re.IGNORECASE)
EVAL_RE = re.compile(rf"step (\d+): train loss ({_NUM}), val loss ({_NUM})\s*$", re.IGNORECASE)
SAVE_RE = re.compile(r"saving checkpoint to (.+?)\s*$")
PARAMS_RE = re.compile(r"number of parameters: ([\d.]+)M")
TOKENS_RE = re.compile(r"tokens per iteration will be: ([\d,]+)")
CONFIG_RE = re.compile(r"^(?:Overriding: )?([A-Za-z_]\w*)\s*=\s*(.+?)\s*$")
# A line that starts like one of ours but did not parse: a truncated last line, a mangled one.
LOOKS_LIKE_RE = re.compile(r"(?:iter \d+:|step \d+: train loss)", re.IGNORECASE)
ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class IterLine:
    iter: int
    loss: float
    seconds: float
    """nanoGPT's `time`: wall time since the previous iteration ended (includes an eval run before it)."""
    mfu_percent: float | None
    """As printed, against 312 TFLOP/s; None when not printed or not measured yet (-100.00%)."""
    after_eval: bool = False
    """A `step N:` line for this iteration came before it: its time includes the evaluation."""
    after_checkpoint: bool = False


@dataclass(slots=True)
class EvalLine:
    iter: int
    train_loss: float
    val_loss: float
    checkpoint_to: str | None = None
    """The directory of a `saving checkpoint to` line that followed it."""


@dataclass
class NanoGPTLog:
    """Everything read from one log, in order."""

    iters: list[IterLine] = field(default_factory=list)
    evals: list[EvalLine] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    """The config echo's `key = value` pairs (values as Python literals where they parse)."""
    params_millions: float | None = None
    tokens_per_iter: int | None = None
    malformed_lines: list[str] = field(default_factory=list)
    """Lines that look like `iter`/`step` lines but did not parse (a truncated last line)."""
    order: list[IterLine | EvalLine] = field(default_factory=list)


def clean_line(line: str) -> str:
    """A log line without ANSI escapes, control characters and surrounding blanks."""
    return CONTROL_RE.sub("", ANSI_RE.sub("", line)).strip()


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Pow: operator.pow, ast.USub: operator.neg, ast.UAdd: operator.pos}


def _literal(text: str) -> Any:
    """A config echo value: a Python literal or plain arithmetic (`5 * 8`), else the text itself.

    Nothing is executed: only numbers, strings, booleans and + - * / // ** on numbers are evaluated.
    """
    text = re.sub(r"\s+#.*$", "", text).strip()  # a trailing comment

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.operand))
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = ev(node.left), ev(node.right)
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right)):
                raise ValueError("arithmetic on non-numbers")
            if isinstance(node.op, ast.Pow) and abs(right) > 64:
                raise ValueError("exponent too large")
            return _OPS[type(node.op)](left, right)
        raise ValueError("not a literal")

    try:
        return ev(ast.parse(text, mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError, TypeError, OverflowError, RecursionError):
        return text


def parse_nanogpt_log(text: str) -> NanoGPTLog:
    """Read a nanoGPT stdout log. Never raises on odd lines: unknown lines are skipped."""
    log = NanoGPTLog()
    pending_eval: EvalLine | None = None  # the eval at the top of the iteration not printed yet
    pending_save = False
    seen_loop = False
    for raw in text.splitlines():  # splits on \n, \r\n and bare \r (progress-bar redraws)
        line = clean_line(raw)
        if not line:
            continue
        if m := ITER_RE.search(line):
            n = int(m[1])
            mfu = float(m[4]) if m[4] is not None else None
            if mfu is not None and (mfu < 0 or not math.isfinite(mfu)):
                mfu = None  # nanoGPT prints -100.00% until it has measured (its first 5 iterations)
            after_eval = pending_eval is not None and pending_eval.iter == n
            item = IterLine(n, float(m[2]), float(m[3]) / 1000.0, mfu, after_eval,
                            after_eval and pending_save)
            log.iters.append(item)
            log.order.append(item)
            pending_eval, pending_save, seen_loop = None, False, True
        elif m := EVAL_RE.search(line):
            pending_eval = EvalLine(int(m[1]), float(m[2]), float(m[3]))
            log.evals.append(pending_eval)
            log.order.append(pending_eval)
            pending_save, seen_loop = False, True
        elif m := SAVE_RE.search(line):
            if log.evals:
                log.evals[-1].checkpoint_to = m[1]
            pending_save = True
        elif m := PARAMS_RE.search(line):
            log.params_millions = float(m[1])
        elif m := TOKENS_RE.search(line):
            log.tokens_per_iter = int(m[1].replace(",", ""))
        elif LOOKS_LIKE_RE.search(line):
            log.malformed_lines.append(line)
        elif not seen_loop and (m := CONFIG_RE.match(line)):
            log.config[m[1]] = _literal(m[2])
    return log


def read_log_text(path: str | Path) -> str:
    """A log file's text (bytes that are not UTF-8 replaced); DataError with one line when unreadable."""
    path = Path(path)
    try:
        if path.exists() and not path.is_dir() and not path.is_file():  # /dev/zero, a pipe: read forever
            raise DataError(f"{path}: not a regular file (a device, pipe or socket); pass a log file")
        return path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        raise DataError(f"{path}: no such run directory or log file; pass a run directory (`fwtui runs` lists "
                        "them), its events.jsonl, or a nanoGPT stdout log") from None
    except IsADirectoryError:
        raise DataError(f"{path}: a directory with no events.jsonl, so not a run directory; pass a run directory "
                        "(`fwtui runs` lists them), its events.jsonl, or a nanoGPT stdout log") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read it ({err.strerror})") from None


def run_config_of(log: NanoGPTLog) -> RunConfig:
    """The RunConfig nanoGPT ran with: train.py's defaults with the echoed keys on top.

    Not validated: the log is a record of what ran, not a config to check (nanoGPT happily runs
    max_iters 7 with warmup_iters 2000). Keys we do not know, or values of the wrong type, are skipped.
    """
    # nanoGPT's train.py fixes these two instead of deriving them from max_iters and learning_rate.
    values: dict[str, Any] = {"lr_decay_iters": 600000, "min_lr": 6e-5}
    for key, value in log.config.items():
        if key in FIELD_NAMES and key != "name":
            try:
                values[key] = _coerce(key, value, "log")
            except ConfigError:
                continue
    return RunConfig(**values)


def nanogpt_lr(config: RunConfig, it: int) -> float:
    """nanoGPT's `get_lr`: linear warm-up, then cosine decay to min_lr at lr_decay_iters."""
    if not config.decay_lr:
        return config.learning_rate
    if it < config.warmup_iters:
        return config.learning_rate * (it + 1) / (config.warmup_iters + 1)
    if it > config.lr_decay_iters:
        return config.min_lr
    span = config.lr_decay_iters - config.warmup_iters
    ratio = (it - config.warmup_iters) / span if span > 0 else 1.0
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))
    return config.min_lr + coeff * (config.learning_rate - config.min_lr)


def typical_iter_seconds(log: NanoGPTLog) -> float | None:
    """Mean `time` of the plain iterations: no eval before them, and not the first (compile, warm-up)."""
    plain = [it.seconds for it in log.iters[1:] if not it.after_eval]
    if not plain:
        plain = [it.seconds for it in log.iters if not it.after_eval] or [it.seconds for it in log.iters]
    return sum(plain) / len(plain) if plain else None


def iteration_gaps(log: NanoGPTLog) -> list[int]:
    """Iterations each logged line stands for: the distance to the previous logged iteration (1 at the start
    and after a restart, when the numbering goes back)."""
    gaps, previous = [], None
    for it in log.iters:
        gap = it.iter - previous if previous is not None and it.iter > previous else 1
        gaps.append(gap)
        previous = it.iter
    return gaps


def covered_seconds(log: NanoGPTLog) -> list[float]:
    """Wall seconds each logged line stands for. With log_interval 1 that is its `time`; with gaps the
    unlogged iterations are counted at the line's own time, or at the typical time after an eval."""
    typical = typical_iter_seconds(log) or 0.0
    out = []
    for it, gap in zip(log.iters, iteration_gaps(log)):
        filler = typical if it.after_eval else it.seconds
        out.append(it.seconds + (gap - 1) * filler)
    return out


def log_to_events(log: NanoGPTLog, *, start_time: float = 0.0, peak_flops: float | None = None,
                  peak_source: str = "", name: str = "nanoGPT log", source: str = "") -> list[Event]:
    """Our events for a parsed log: RunStarted, Step per `iter` line, Eval, CheckpointSaved, and Finished
    when the last iteration reached max_iters.

    MFU: the printed value is against 312 TFLOP/s; with `peak_flops` (the card's real peak) it is rescaled
    to that peak. Event times are `start_time` + the cumulative iteration times.
    """
    config = run_config_of(log)
    tokens_per_iter = log.tokens_per_iter or config.tokens_per_iter
    figures = figures_for(config)  # parameters and FLOPs a token, counted once
    counts = figures.params
    params = round(log.params_millions * 1e6) if log.params_millions is not None else counts.nanogpt
    if peak_flops is None:
        peak_flops, peak_source = NANOGPT_PEAK_FLOPS, (
            "nanoGPT's estimate_mfu constant (A100 bf16, 312 TFLOP/s), not this card's; "
            "`fwtui view LOG --gpu NAME` rescales it")
    scale = NANOGPT_PEAK_FLOPS / peak_flops
    first_iter = log.iters[0].iter if log.iters else 0
    events: list[Event] = [RunStarted(
        time=start_time, run_dir=source, config=config.to_dict() | {"name": name},
        params=params, params_with_embeddings=params + (counts.total - counts.nanogpt),
        device=str(log.config.get("device", "unknown")), device_name="unknown (not in a nanoGPT log)",
        device_memory_bytes=None, peak_flops=peak_flops, peak_flops_source=peak_source,
        flops_per_token=figures.flops_per_token, tokens_per_iter=tokens_per_iter, dataset_tokens=0,
        start_iter=first_iter, max_iters=config.max_iters, precision=str(log.config.get("dtype", "unknown")),
        compiled=log.config.get("compile", True) is True)]
    typical = typical_iter_seconds(log) or 0.0
    spans = dict(zip((id(it) for it in log.iters), covered_seconds(log)))
    elapsed, best_val = 0.0, math.inf
    for item in log.order:
        if isinstance(item, EvalLine):
            best_val = min(best_val, item.val_loss)
            continue
        # The first iteration's extra time is compile and warm-up as much as evaluation: not attributable.
        extra = max(0.0, item.seconds - typical) if item.after_eval and item is not log.iters[0] else 0.0
        before = elapsed
        elapsed += spans[id(item)]
        ev = next((e for e in log.evals if e.iter == item.iter), None) if item.after_eval else None
        if ev is not None:
            # The eval and checkpoint ran at the top of this iteration; their cost is the time above typical.
            events.append(Eval(time=start_time + before + extra, iter=ev.iter, train_loss=ev.train_loss,
                               val_loss=ev.val_loss, best_val_loss=min(best_val, ev.val_loss), seconds=extra))
            if ev.checkpoint_to is not None:
                events.append(CheckpointSaved(time=start_time + before + extra, iter=ev.iter,
                                              path=f"{ev.checkpoint_to}/ckpt.pt", bytes=0, seconds=0.0,
                                              reason="eval"))
        mfu = item.mfu_percent / 100.0 * scale if item.mfu_percent is not None else None
        done = item.iter + 1  # iterations 0..N are done after `iter N`
        events.append(Step(
            time=start_time + elapsed, iter=item.iter, loss=item.loss, lr=nanogpt_lr(config, item.iter),
            step_seconds=item.seconds, tokens_per_sec=tokens_per_iter / item.seconds if item.seconds > 0 else 0.0,
            mfu=mfu, mem_allocated_bytes=None, mem_reserved_bytes=None, mem_peak_bytes=None,
            mem_total_bytes=None, tokens_seen=done * tokens_per_iter, epoch=0.0, elapsed_seconds=elapsed,
            eta_seconds=max(0, config.max_iters - done) * typical if typical else None))
    # An eval printed last (the run ended or the log was cut before its iteration line).
    for ev in log.evals:
        if not any(isinstance(e, Eval) and e.iter == ev.iter for e in events):
            best_val = min(best_val, ev.val_loss)
            events.append(Eval(time=start_time + elapsed, iter=ev.iter, train_loss=ev.train_loss,
                               val_loss=ev.val_loss, best_val_loss=best_val, seconds=0.0))
    # nanoGPT's loop runs iterations 0..max_iters inclusive, then breaks.
    if log.iters and log.iters[-1].iter >= config.max_iters and "max_iters" in log.config:
        last_eval = log.evals[-1] if log.evals else None
        events.append(Finished(time=start_time + elapsed, iter=log.iters[-1].iter, reason="completed",
                               seconds=elapsed, final_train_loss=last_eval.train_loss if last_eval else None,
                               final_val_loss=last_eval.val_loss if last_eval else None))
    return events
