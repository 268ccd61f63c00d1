"""Training batches from a flat uint16 token file, with an explicit position that a checkpoint saves.

Like nanoGPT, each batch is `batch_size` windows of block_size + 1 tokens at random offsets. Unlike
nanoGPT, the offsets of batch k come from a generator seeded by (seed, stream, k) alone: no hidden RNG
state, so the loader's whole state is `position` (batches handed out) and a resume at position k yields
exactly the batches an uninterrupted run would have. Evaluation uses its own streams, so evaluating never
moves the training batches. On CUDA the batch is built in pinned memory and copied with non_blocking=True;
the next batch is fetched while the GPU runs the current one (`prefetch`). The inputs and targets are two
shifted views of one (B, T + 1) array, so each is written into its own contiguous (pinned) buffer
(`to_device`): a non-contiguous pinned view would make `.to(cuda, non_blocking=True)` stage a pageable
contiguous copy first, a wait on the host in every micro-step.

Several ranks (trainer.train.distributed): rank r of N takes the global batches r, r + N, r + 2N, ...: its
local batch i is global batch i·N + r. Each rank then runs accumulation A = A_total / N, and step s covers
global batches s·N·A .. s·N·A + N·A - 1 over all ranks: exactly the batches one process with accumulation
N·A reads at step s. `position` stays the rank's local count; the checkpoint records the world size, so a
resume under another world size re-derives it from the global count (position · N_old / N_new).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from trainer.data.dataset import check_token_ids

TRAIN_STREAM = 0
EVAL_TRAIN_STREAM = 1
EVAL_VAL_STREAM = 2


def host_batch(windows: np.ndarray, pinned: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets, (B, T) int64 each, from windows (B, T + 1) of token ids: two
    contiguous host tensors, in pinned (page-locked) memory when `pinned`. One copy each, from the array."""
    b, t = windows.shape[0], windows.shape[1] - 1
    x = torch.empty((b, t), dtype=torch.int64, pin_memory=pinned)
    y = torch.empty((b, t), dtype=torch.int64, pin_memory=pinned)
    x.numpy()[:] = windows[:, :-1]
    y.numpy()[:] = windows[:, 1:]
    return x, y


def to_device(windows: np.ndarray, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) of `windows` on `device`: on CUDA from contiguous pinned buffers, copied without blocking
    the host; elsewhere the contiguous host tensors themselves."""
    if not device.startswith("cuda"):
        return host_batch(windows, pinned=False)
    x, y = host_batch(windows, pinned=True)
    return copy_to_device(x, device), copy_to_device(y, device)


def copy_to_device(tensor: torch.Tensor, device: str) -> torch.Tensor:
    """The host-to-device copy of a batch tensor (its own function: the test of contiguous hand-offs
    watches it)."""
    return tensor.to(device, non_blocking=True)


class BatchLoader:
    def __init__(self, path: str | Path, *, block_size: int, batch_size: int, seed: int, stream: int = 0,
                 device: str = "cpu", rank: int = 0, world_size: int = 1) -> None:
        self.path = Path(path)
        self.rank = rank
        self.world_size = world_size
        self.rank_positions: list[int] | None = None
        """Every rank's position, gathered to rank 0 at the last boundary (None with one process)."""
        self.block_size = block_size
        self.batch_size = batch_size
        self.seed = seed
        self.stream = stream
        self.device = device
        self.cuda = device.startswith("cuda")
        self.tokens = self.path.stat().st_size // 2  # uint16
        if self.tokens <= block_size + 1:
            from trainer.errors import DataError

            raise DataError(f"{self.path} holds {self.tokens} tokens, fewer than block_size + 1 "
                            f"({block_size + 1}); use more data or a smaller --set block_size")
        self.position = 0
        """Batches handed out so far; the index of the next batch."""
        self._ready: tuple[int, tuple[torch.Tensor, torch.Tensor]] | None = None

    def offsets(self, index: int) -> np.ndarray:
        """Start offsets (batch_size,) of batch `index`: a pure function of (seed, stream, index)."""
        rng = np.random.default_rng([self.seed, self.stream, index])
        return rng.integers(0, self.tokens - self.block_size - 1, size=self.batch_size, endpoint=True)

    def global_index(self, index: int) -> int:
        """The global batch index of this rank's local batch `index`."""
        return index * self.world_size + self.rank

    def _load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        # A fresh memmap each batch (as nanoGPT): a long-lived one keeps every page it touched counted in
        # the process's resident memory.
        data = np.memmap(self.path, dtype=np.uint16, mode="r")
        starts = self.offsets(self.global_index(index))
        windows = check_token_ids(np.stack([data[o:o + self.block_size + 1] for o in starts]), self.path)
        return to_device(windows, self.device)  # inputs and next-token targets, each (B, T) int64

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch at `position` (prefetched if `prefetch` was called), then position += 1."""
        if self._ready is not None and self._ready[0] == self.position:
            batch = self._ready[1]
        else:
            batch = self._load(self.position)
        self._ready = None
        self.position += 1
        return batch

    def prefetch(self) -> None:
        """Build the next batch now (its host->device copy runs while the GPU is busy)."""
        if self._ready is None or self._ready[0] != self.position:
            self._ready = (self.position, self._load(self.position))

    def state(self) -> dict:
        """What a checkpoint stores to continue exactly here (plain ints and strings)."""
        return {"position": self.position, "batch_size": self.batch_size, "block_size": self.block_size,
                "seed": self.seed, "stream": self.stream, "tokens": self.tokens, "world_size": self.world_size,
                "rank_positions": list(self.rank_positions or [self.position] * self.world_size)}

    def load_state(self, state: dict) -> str | None:
        """Continue at a saved position; returns a warning when it was saved under another world size."""
        self._ready = None
        saved_world = int(state.get("world_size", self.world_size))  # a bare {"position": p}: this world
        if saved_world == self.world_size:
            positions = state.get("rank_positions") or []
            self.position = int(positions[self.rank]) if len(positions) == self.world_size else int(state["position"])
            return None
        global_batches = int(state["position"]) * saved_world  # batches read by all ranks together
        self.position = global_batches // self.world_size
        return (f"resuming a run saved with {saved_world} process(es) on {self.world_size}: data positions "
                f"re-derived ({global_batches:,} global batches read, {self.position:,} per rank); the "
                "batches continue in order, but random states differ, so the losses are not bitwise those of "
                f"an uninterrupted run")

    def set_batch_size(self, batch_size: int) -> None:
        """A smaller micro-batch after out-of-memory; the position keeps counting batches handed out."""
        self.batch_size = batch_size
        self._ready = None
