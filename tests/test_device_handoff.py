"""What the loader and the evaluator hand to a CUDA device, checked on CPU: contiguous (pinned) buffers, one
per tensor (a non-contiguous pinned view makes `.to(cuda, non_blocking=True)` stage a pageable copy on the
host in every micro-step), and evaluation batches of one shape (a short last batch would compile a third
graph), padded with ignored targets so the losses are unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer.data import batches
from trainer.data.batches import BatchLoader, host_batch
from trainer.train.evaluator import Evaluator


@pytest.fixture
def handoffs(monkeypatch):
    """Every tensor copied to "cuda", with whether its host buffer was asked pinned (this CPU build of torch
    cannot pin: the buffer is made unpinned, the request recorded)."""
    seen: list[tuple[torch.Tensor, bool]] = []
    pinned_ids: set[int] = set()
    real_host_batch = batches.host_batch

    def recording_host_batch(windows, pinned):
        x, y = real_host_batch(windows, pinned=False)
        if pinned:
            pinned_ids.update((id(x), id(y)))
        return x, y

    def recording_copy(tensor, device):
        assert device == "cuda"
        seen.append((tensor, id(tensor) in pinned_ids))
        return tensor

    monkeypatch.setattr(batches, "host_batch", recording_host_batch)
    monkeypatch.setattr(batches, "copy_to_device", recording_copy)
    return seen


def test_training_batches_reach_the_device_from_contiguous_pinned_buffers(pattern_data, handoffs):
    loader = BatchLoader(pattern_data.train_path, block_size=32, batch_size=4, seed=1, device="cuda")
    x, y = loader.next()
    loader.prefetch()
    loader.next()
    assert len(handoffs) == 4
    assert all(t.is_contiguous() and pinned and t.shape == (4, 32) for t, pinned in handoffs)
    assert torch.equal(x[:, 1:], y[:, :-1])  # still inputs and next-token targets


def test_evaluation_batches_reach_the_device_contiguous_and_of_one_shape(pattern_data, handoffs):
    ev = Evaluator(train_path=pattern_data.train_path, val_path=pattern_data.val_path, block_size=32,
                   batch_size=5, eval_iters=3, device="cuda")  # 15 windows; set to 4 below: 4, 4, 4, 3
    ev.set_batch_size(4)
    shapes = [(tuple(x.shape), n) for x, _, n in ev.batches("val")]
    assert shapes == [((4, 32), 4)] * 3 + [((4, 32), 3)]
    assert handoffs and all(t.is_contiguous() and pinned for t, pinned in handoffs)


def test_a_padded_last_batch_ignores_its_padding(pattern_data):
    ev = Evaluator(train_path=pattern_data.train_path, val_path=pattern_data.val_path, block_size=32,
                   batch_size=5, eval_iters=3, device="cpu")
    *full, (x, y, n) = list(ev.batches("val"))  # 15 windows in batches of 5: none padded
    assert n == 5 and (y >= 0).all()
    ev.set_batch_size(4)
    *_, (x, y, n) = list(ev.batches("val"))
    assert x.shape == (4, 32) and n == 3
    assert (y[3] == -1).all() and (y[:3] >= 0).all()


def test_host_batch_is_one_contiguous_copy_of_each_shift():
    windows = np.arange(2 * 5, dtype=np.uint16).reshape(2, 5)
    x, y = host_batch(windows, pinned=False)
    assert x.is_contiguous() and y.is_contiguous() and x.dtype == y.dtype == torch.int64
    assert x.tolist() == [[0, 1, 2, 3], [5, 6, 7, 8]] and y.tolist() == [[1, 2, 3, 4], [6, 7, 8, 9]]
