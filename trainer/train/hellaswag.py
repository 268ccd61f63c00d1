"""HellaSwag scoring: which of 4 endings the model finds most likely, completion style.

For each example the 4 rows `ctx + " " + ending` go through the model as one batch (4, T), padded on the
right; the cross-entropy is taken on the ending's tokens only. `acc` picks the ending with the lowest
summed loss, `acc_norm` the lowest mean loss per token (the GPT-2 paper's method as build-nanogpt and
llm.c run it, REFERENCE.md section 11). One forward per example, no KV cache.

The forward is the model's own: a hook on its final norm (ln_f) keeps the hidden states (4, T, C), so
the head (`GPT.head`: C -> V and any logit cap; the costly matmul at small sizes) runs only on the
positions that predict an ending token. It runs in the run's precision (autocast), under no_grad and eval
mode (restored after), and draws no random numbers, so the training RNG and batches are untouched. A row
longer than block_size keeps its last block_size tokens (the context is cropped from the left, the ending
kept whole), and is counted.

On a CPU it runs on one intra-op thread (set back after), as sampling does: an example is a few dozen
small ops, and a two-thread OpenMP team waits at each of them for a worker that another process (or the
app's UI) has descheduled. On the 2-core machine under a load of 9, bench/hellaswag.py scored 5.9
examples/s at cpu-tiny on two threads and 29.1 on one.

The 95% interval is Wilson's score interval, which stays inside [0, 1] for small counts.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

import torch
from torch.nn import functional as F

from trainer.data.hellaswag import Example, tokenize
from trainer.errors import FwtuiError
from trainer.model.precision import autocast_for
from trainer.model.threads import one_cpu_thread
from trainer.observe import events as ev
from trainer.train.distributed import Dist

if TYPE_CHECKING:
    from trainer.config import RunConfig

WILSON_Z = 1.959964  # the normal quantile of a two-sided 95% interval


def wilson_interval(correct: int, count: int, z: float = WILSON_Z) -> tuple[float, float]:
    """Wilson's score interval for a proportion correct/count; (0, 1) when count is 0."""
    if count <= 0:
        return 0.0, 1.0
    p = correct / count
    denom = 1 + z * z / count
    centre = (p + z * z / (2 * count)) / denom
    half = z * math.sqrt(p * (1 - p) / count + z * z / (4 * count * count)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True, slots=True)
class Choice:
    """One example's verdict: the ending picked by summed loss and by mean loss, and the true one."""

    line: int
    label: int
    pred: int
    pred_norm: int


@dataclass(slots=True)
class HellaSwagResult:
    count: int = 0
    correct: int = 0
    correct_norm: int = 0
    cropped: int = 0
    """Examples with a row longer than block_size (context cropped from the left)."""
    seconds: float = 0.0
    choices: list[Choice] = field(default_factory=list)

    @property
    def acc(self) -> float:
        return self.correct / self.count if self.count else float("nan")

    @property
    def acc_norm(self) -> float:
        return self.correct_norm / self.count if self.count else float("nan")

    @property
    def acc_interval(self) -> tuple[float, float]:
        return wilson_interval(self.correct, self.count)

    @property
    def acc_norm_interval(self) -> tuple[float, float]:
        return wilson_interval(self.correct_norm, self.count)

    @property
    def examples_per_sec(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("nan")


def example_batch(ctx: list[int], endings: list[list[int]], block_size: int,
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
    """(tokens (4, T), targets (4, T), mask (4, T), cropped) for one example on the CPU.

    targets[r, t] is the token after position t; mask marks the positions whose target is an ending token.
    """
    rows, masks, cropped = [], [], False
    for ending in endings:
        row = ctx + ending
        n_end = len(ending)
        if len(row) > block_size + 1:  # the input holds the first T-1 tokens, the targets the last T-1
            row, cropped = row[-(block_size + 1):], True
            n_end = min(n_end, block_size)
        rows.append(row)
        masks.append([0] * (len(row) - n_end) + [1] * n_end)
    width = max(len(r) for r in rows)
    full = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.bool)
    for r, (row, m) in enumerate(zip(rows, masks)):
        full[r, :len(row)] = torch.tensor(row)
        mask[r, :len(m)] = torch.tensor(m, dtype=torch.bool)
    return full[:, :-1], full[:, 1:], mask[:, 1:], cropped


def ending_losses(model: torch.nn.Module, tokens: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed, mean) cross-entropy of each row's ending tokens, each (4,), float32 on tokens' device."""
    captured: list[torch.Tensor] = []
    hook = model.transformer.ln_f.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        model(tokens)  # the trunk runs on every position; its own head only on the last one
    finally:
        hook.remove()
    hidden = captured[-1]  # (4, T, C)
    if hidden.shape[:2] != tokens.shape:
        raise RuntimeError(f"the model's ln_f gave {tuple(hidden.shape)} for tokens {tuple(tokens.shape)}")
    rows, positions = mask.nonzero(as_tuple=True)  # (N,) each: the N ending tokens of the 4 rows
    logits = model.head(hidden[rows, positions])  # (N, V): the model's head (and its logit cap, if any)
    losses = F.cross_entropy(logits.float(), targets[rows, positions], reduction="none")  # (N,)
    summed = torch.zeros(tokens.size(0), device=tokens.device).index_add_(0, rows, losses)  # (4,)
    return summed, summed / mask.sum(dim=1)


@torch.no_grad()
def score(model: torch.nn.Module, examples: Sequence[Example], encoding, *, device: str = "cpu",
          precision: str = "float32", on_progress: Callable[[int, int], None] | None = None,
          keep_choices: bool = False) -> HellaSwagResult:
    """Score `examples` with `model` (a trainer.model.gpt.GPT, uncompiled); see the module docstring.

    `on_progress(done, total)` is called after each example; `keep_choices` keeps every example's verdict.
    """
    block_size, vocab_size = model.args.block_size, model.args.vocab_size
    autocast = autocast_for(precision, device)
    was_training = model.training
    model.eval()
    result = HellaSwagResult()
    t0 = time.perf_counter()
    with one_cpu_thread(device):  # many small ops: see trainer.model.threads
        try:
            for done, example in enumerate(examples, start=1):
                ctx, endings = tokenize(example, encoding)
                tokens, targets, mask, cropped = example_batch(ctx, endings, block_size)
                if int(tokens.max()) >= vocab_size:  # checked on the CPU: on CUDA an id too large is a fatal assert
                    raise FwtuiError(f"HellaSwag's GPT-2 tokens reach id {int(tokens.max())}, beyond the model's "
                                     f"vocab_size {vocab_size}; it needs GPT-2's 50257 (or 50304)")
                tokens, targets, mask = (t.to(device, non_blocking=True) for t in (tokens, targets, mask))
                with autocast:
                    summed, mean = ending_losses(model, tokens, targets, mask)
                pred, pred_norm = torch.stack([summed.argmin(), mean.argmin()]).tolist()  # the example's one sync
                result.count += 1
                result.correct += int(pred == example.label)
                result.correct_norm += int(pred_norm == example.label)
                result.cropped += int(cropped)
                if keep_choices:
                    result.choices.append(Choice(example.line, example.label, pred, pred_norm))
                if on_progress is not None:
                    on_progress(done, len(examples))
        finally:
            model.train(was_training)
    result.seconds = time.perf_counter() - t0
    return result


class _Stopped(Exception):
    """Raised between two examples when the run is asked to stop (HellaSwagAtBoundary.stopping)."""


class HellaSwagAtBoundary:
    """A run's HellaSwag: scored every hellaswag_interval iterations and at max_iters (0: only when asked,
    the `h` key), at a step boundary, on the uncompiled model (each example's width differs, which would
    make a compiled one recompile). Emits trainer.observe.events.HellaSwag and feeds its seconds to the ETA.

    The file (`--hellaswag-file`'s FWTUI_HELLASWAG_FILE, else the cache) is found and read at the first
    scoring, not at setup: a run that never scores needs none. If it cannot be had (offline with no file, a
    damaged line) that is one warning naming the fix, and the periodic scoring stops; a scoring that fails
    is a warning too. Training goes on either way, and a later `h` tries again.

    With several processes (`ranks`, the Trainer's Dist) rank r of N scores examples r, r+N, r+2N, ... and
    one all_reduce (SUM) of (6,) int64 [correct, correct_norm, count, cropped, failed, stopped ranks] adds them up:
    the counts one process gets, example for example. Every rank reaches that collective even when its
    own load or scoring failed (it adds failed = 1), so no rank waits forever and all of them stop the
    periodic scoring together (`due` must agree on every rank). Rank 0 alone emits the event.

    `stopping()` (the run's own stop flag, not yet agreed by the ranks) is read after each example: a stop
    asked mid-scoring (SIGTERM, the control channel) ends this rank's share there, so the stop's checkpoint
    is not held up by the rest of the file (torchrun kills the ranks TORCH_ELASTIC_SHUTDOWN_TIMEOUT seconds,
    30 by default, after a SIGTERM). That scoring is then not counted: no event, one warning, and the
    periodic scoring stays as it was (on every rank: the stopped count is in the collective).
    """

    def __init__(self, config: "RunConfig", device: str, precision: str, emit: Callable,
                 warn: Callable[[str], None], eta=None, *, file: str | None = None, ranks: Dist | None = None,
                 stopping: Callable[[], bool] | None = None) -> None:
        """`eta`: the run's trainer.observe.metrics.EtaEstimator, told the plan and fed each scoring's time."""
        self.interval, self.limit = config.hellaswag_interval, config.hellaswag_limit
        self.max_iters = config.max_iters
        self.device, self.precision = device, precision
        self.emit, self.warn, self.eta, self.file = emit, warn, eta, file
        self.ranks = ranks or Dist()
        self.stopping = stopping
        self._examples: list[Example] | None = None
        self._encoding = None
        if eta is not None:
            eta.plan_hellaswag(self.interval, self.max_iters)

    def due(self, it: int) -> bool:
        return self.interval > 0 and it > 0 and (it % self.interval == 0 or it == self.max_iters)

    def _load(self) -> str | None:
        """Read the file once; the reason it cannot be had, or None."""
        if self._examples is not None:
            return None
        from trainer.data import hellaswag as data
        from trainer.data.tokenizer import get_encoding

        try:
            self._examples = data.load(self.file, limit=self.limit or None).examples
            self._encoding = get_encoding()
        except FwtuiError as err:
            return str(err)
        return None

    def _not_scored(self, why: str) -> None:
        if self.interval:
            self.warn(f"HellaSwag not scored, and not again every {self.interval:,} iterations: {why}")
            self.interval = 0
        else:
            self.warn(f"HellaSwag not scored: {why}")

    def _my_share(self, model: torch.nn.Module) -> tuple[HellaSwagResult | None, str | None, bool]:
        """This rank's examples (r, r+N, ...) scored, or why not and whether a stop cut it short (the file
        was read by `_load`)."""
        share = self._examples[self.ranks.rank::self.ranks.world_size]

        def check_stop(done: int, total: int) -> None:
            if self.stopping is not None and self.stopping():
                raise _Stopped(f"a stop was asked after {done:,} of this process's {total:,} examples")

        try:
            return score(model, share, self._encoding, device=self.device, precision=self.precision,
                         on_progress=check_stop), None, False
        except _Stopped as stopped:
            return None, str(stopped), True
        except Exception as err:  # noqa: BLE001 - a failed scoring never stops training
            return None, f"{type(err).__name__}: {err}", False

    def run(self, model: torch.nn.Module, it: int) -> None:
        """Score now, every rank its share (training waits)."""
        why = self._load()  # once per run: not part of a scoring's time
        t0 = time.perf_counter()
        mine, why, cut = self._my_share(model) if why is None else (None, why, False)
        counts = torch.tensor([mine.correct, mine.correct_norm, mine.count, mine.cropped, 0, 0] if mine else
                              [0, 0, 0, 0, int(not cut), int(cut)], dtype=torch.int64, device=self.device)
        correct, correct_norm, count, cropped, failed, stopped = self.ranks.sum(counts).tolist()  # the one collective
        # Seconds training waits at each scoring: this rank's share of the examples, then the wait for the
        # slowest rank in the all_reduce (the first scoring's read of the file is left out: it happens once).
        # The event and the ETA (the cost of each scoring still to come) both take it.
        seconds = time.perf_counter() - t0
        if stopped and not failed:
            self.warn(f"HellaSwag at iter {it:,} not counted: {why or 'a stop was asked on another process'}")
            return
        if failed:
            self._not_scored(why or f"it failed on {failed} of {self.ranks.world_size} processes")
            return
        if self.eta is not None:
            self.eta.add_hellaswag(seconds)
        if self.ranks.is_main:
            total = HellaSwagResult(count=count, correct=correct, correct_norm=correct_norm, cropped=cropped)
            self.emit(ev.HellaSwag(iter=it, acc=total.acc, acc_norm=total.acc_norm, count=total.count,
                                   seconds=seconds))
