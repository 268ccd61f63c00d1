"""The Evaluator: the train and val loss over fixed, non-overlapping windows, the same at every evaluation.

nanoGPT's estimate_loss draws eval_iters fresh random batches per split, so two evaluations of the same
weights differ, and windows overlap (some tokens read twice, others never). Here each split's windows are
chosen once, at construction, and kept: eval_iters x batch_size windows of block_size + 1 tokens, evenly
spaced over the split's whole file on a grid of non-overlapping slots. Evenly spaced rather than
consecutive from the start, because the start of val.bin is a handful of documents, while the spread
covers every part of the split. A split with fewer slots than that uses every slot it has (at least one:
the data layer keeps >= 16,400 val tokens). Successive val losses are then differences in the weights
alone, and the windows (a few MB at most, uint16) are read from disk once and kept in host memory.

The loss of a split is the mean over its windows of each window's mean next-token loss, accumulated on the
device: one host sync per evaluation, for both splits together.

With several processes (torchrun) the windows are split over the ranks: rank r of N evaluates windows r,
r+N, r+2N, ... of each split (it reads only those), sums its per-window losses and counts them on the
device, and one all_reduce (SUM: gloo's AVG is unreliable) of a (4,) float32 tensor [train sum, train
count, val sum, val count] gives every rank the totals to divide. So N ranks take 1/N of the time and get
the mean one process gets over all windows (to float rounding: the sums are added in another order, in
other batches), still with one host sync. A rank with no window of a split (fewer windows than ranks)
adds zeros. One process: no collective.

Bits per byte (trainer.data.bpb) comes with each loss when the Evaluator is given the tokenizer's byte
length table: every window has block_size targets, so the mean of the windows' mean losses times the
split's tokens is the sum of its target-token losses (nats), and that over ln 2 and the targets' UTF-8
bytes (counted once, at construction, over all windows of all ranks) is the exact bits per byte.

A stop (Ctrl-C, SIGTERM) cuts an evaluation at its next batch: `evaluate` returns None and the stop's
checkpoint is written at once, instead of after minutes of evaluation a supervisor does not wait for. With
several ranks each rank cuts on its own stop flag (torchrun passes a signal to all of them) and still takes
part in the evaluation's one all_reduce, which carries a fifth number, how many ranks cut: when it is not
zero every rank returns None, so none is left waiting in a collective and all stop at the same boundary. A
stop asked of rank 0 alone (the app's `q`) waits for the other ranks' share of the windows.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainer.data.bpb import bits_per_byte, target_bytes
from trainer.data.dataset import check_token_ids
from trainer.data.batches import to_device
from trainer.train.controls import EVALUATING, Controls
from trainer.train.distributed import Dist


@dataclass(frozen=True, slots=True)
class EvalResult:
    losses: dict[str, float]
    """Mean loss (nats/token) of each split, "train" and "val"."""
    tokens: dict[str, int]
    """Predicted tokens each split's loss covers: windows x block_size."""
    bpb: dict[str, float] | None = None
    """Bits per UTF-8 byte of each split's target text (None without a byte table)."""


def window_offsets(file_tokens: int, block_size: int, wanted: int) -> np.ndarray:
    """Start offsets (n,) of min(wanted, slots) windows of block_size + 1 tokens, evenly spaced over the
    slots that tile the file without overlap (slot i starts at i * (block_size + 1)); n >= 1."""
    span = block_size + 1
    slots = max(file_tokens // span, 1)
    n = max(min(wanted, slots), 1)
    return (np.arange(n, dtype=np.int64) * slots // n) * span  # distinct slots, since n <= slots


class Evaluator:
    """Constructed once per run with the data it reads; `evaluate(model)` gives both splits' losses.

    The model is an argument, not kept: a compile failure at evaluation swaps the compiled module for the
    eager one, and the Trainer passes whichever runs. `token_bytes` (trainer.data.bpb.token_byte_lengths)
    adds bits per byte to each result. `ranks` (the Trainer's Dist) says which share of the
    windows this process evaluates and adds the shares up; by default one process, all windows.
    """

    def __init__(self, *, train_path: str | Path, val_path: str | Path, block_size: int, batch_size: int,
                 eval_iters: int, device: str, autocast: contextlib.AbstractContextManager | None = None,
                 ranks: Dist | None = None, token_bytes: np.ndarray | None = None,
                 controls: Controls | None = None) -> None:
        self.block_size = block_size
        self.controls = controls  # this process's stop flag (a stop cuts the evaluation) and activity
        self.batch_size = batch_size
        self.device = device
        self.autocast = autocast if autocast is not None else contextlib.nullcontext()
        self.ranks = ranks or Dist()
        wanted = max(eval_iters, 1) * batch_size
        self.offsets = {split: window_offsets(Path(path).stat().st_size // 2, block_size, wanted)
                        for split, path in (("train", train_path), ("val", val_path))}
        """Every window of each split (all ranks together): what the losses cover."""
        self.mine = {split: offsets[self.ranks.rank::self.ranks.world_size] for split, offsets in self.offsets.items()}
        """The windows this rank evaluates: r, r+N, r+2N, ... of each split's."""
        self._windows = {split: self._read(Path(path), self.mine[split])
                         for split, path in (("train", train_path), ("val", val_path))}
        self.target_bytes: dict[str, int] | None = None
        """UTF-8 bytes of each split's targets over all windows (every rank's): bits per byte's denominator."""
        if token_bytes is not None:
            paths = {"train": Path(train_path), "val": Path(val_path)}
            self.target_bytes = {split: target_bytes(self._windows[split] if self.ranks.world_size == 1 else
                                                     self._read(paths[split], offsets), token_bytes)
                                 for split, offsets in self.offsets.items()}

    def _read(self, path: Path, offsets: np.ndarray) -> np.ndarray:
        data = np.memmap(path, dtype=np.uint16, mode="r")
        windows = [np.asarray(data[o:o + self.block_size + 1]) for o in offsets]
        if not windows:
            return np.zeros((0, self.block_size + 1), np.uint16)
        return check_token_ids(np.stack(windows), path)  # (n, T + 1) uint16

    @property
    def tokens(self) -> dict[str, int]:
        return {split: len(offsets) * self.block_size for split, offsets in self.offsets.items()}

    def set_batch_size(self, batch_size: int) -> None:
        """After out-of-memory: the same windows, in smaller batches (the losses stay comparable)."""
        self.batch_size = batch_size

    def batches(self, split: str):
        """(x, y, windows) for each batch of this rank's fixed windows of the split; x, y (B, T) int64 on the
        device, B always batch_size: a last, shorter batch is padded with copies of its first window whose
        targets are -1 (the loss ignores them), so a compiled model sees one shape, never a third graph or a
        dynamic batch dimension. `windows` counts the real ones."""
        windows = self._windows[split]
        for start in range(0, len(windows), self.batch_size):
            chunk = windows[start:start + self.batch_size]  # (n, T + 1) uint16
            n = len(chunk)
            if n < self.batch_size:
                chunk = np.concatenate([chunk, np.repeat(chunk[:1], self.batch_size - n, axis=0)])
            x, y = to_device(chunk, self.device)
            if n < self.batch_size:
                y[n:] = -1  # ignore_index of the model's loss: the padding adds no target
            yield x, y, n

    def _stop_asked(self) -> bool:
        """This process's own stop flag (a signal or a key), not the ranks' agreement."""
        return self.controls is not None and self.controls.stop_requested

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module) -> EvalResult | None:
        """Mean loss of each split over its fixed windows (all ranks' together), in eval mode (no dropout);
        train mode after. None when a stop cut it short (on any rank: every rank then returns None)."""
        was_training = model.training
        model.eval()
        doing = self.controls.doing(EVALUATING) if self.controls is not None else contextlib.nullcontext()
        try:
            with doing:
                parts = []  # [sum of per-window mean losses, windows] of each split, 0-dim float32 on the device
                cut = False
                for split in ("train", "val"):
                    total = torch.zeros((), dtype=torch.float32, device=self.device)
                    for x, y, n in ([] if cut else self.batches(split)):
                        if self._stop_asked():
                            cut = True
                            break
                        with self.autocast:
                            _, loss = model(x, y)  # mean over the batch's n x T targets
                        total += loss.float() * n  # = the sum of its n windows' mean losses (padding has no target)
                    # a fill on the device, not a copy from the host (which would wait for the queued forwards)
                    parts += [total, torch.full((), float(len(self.mine[split])), device=self.device)]
                if cut and not self.ranks.active:
                    return None
                parts.append(torch.full((), float(cut), device=self.device))  # ranks that cut, once summed
                sums = self.ranks.sum(torch.stack(parts))  # (5,): every rank's share added (no-op for one process)
                # the evaluation's one host sync: [train loss, val loss, ranks that cut]
                train_loss, val_loss, cut_by = torch.cat([sums[0:4:2] / sums[1:4:2], sums[4:]]).tolist()
        finally:
            model.train(was_training)
        if cut_by:
            return None
        losses, tokens = {"train": train_loss, "val": val_loss}, self.tokens
        bpb = None if self.target_bytes is None else {
            split: bits_per_byte(losses[split] * tokens[split], self.target_bytes[split]) for split in losses}
        return EvalResult(losses=losses, tokens=tokens, bpb=bpb)
