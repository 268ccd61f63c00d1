"""The Evaluator alone (trainer/train/evaluator.py): fixed, non-overlapping windows, the same at every
evaluation; the loss a plain forward gives over them; the tokens it covered; a short split uses what it has."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer.model.gpt import GPT, ModelArgs
from trainer.train.evaluator import Evaluator, window_offsets

BLOCK = 32


@pytest.fixture(scope="module")
def data(pattern_data):
    """tests/conftest.py write_pattern_dataset: train 20,000 and val 2,000 token ids below 256."""
    return pattern_data


def tiny_model() -> GPT:
    torch.manual_seed(0)
    return GPT(ModelArgs(n_layer=1, n_head=2, n_embd=32, block_size=BLOCK, vocab_size=256, dropout=0.1))


def evaluator(data, batch_size=4, eval_iters=3) -> Evaluator:
    return Evaluator(train_path=data.train_path, val_path=data.val_path, block_size=BLOCK,
                     batch_size=batch_size, eval_iters=eval_iters, device="cpu")


def test_windows_do_not_overlap_and_are_spread_over_the_split():
    offsets = window_offsets(file_tokens=10_000, block_size=BLOCK, wanted=12)
    assert len(offsets) == 12 and len(set(offsets.tolist())) == 12
    ends = offsets + BLOCK + 1
    assert np.all(offsets[1:] >= ends[:-1])  # each window ends before the next begins: no token read twice
    assert ends[-1] <= 10_000 and offsets[0] == 0
    assert offsets[-1] > 10_000 * 0.8  # evenly spaced: the end of the split is sampled too, not only its start
    assert np.all(offsets % (BLOCK + 1) == 0)  # on the grid of slots


def test_a_short_split_uses_every_window_it_has_and_at_least_one():
    slots = 2_000 // (BLOCK + 1)  # 60 slots in a 2,000-token split
    offsets = window_offsets(file_tokens=2_000, block_size=BLOCK, wanted=1_000)
    assert len(offsets) == slots and offsets.tolist() == [i * (BLOCK + 1) for i in range(slots)]
    assert len(window_offsets(file_tokens=BLOCK + 5, block_size=BLOCK, wanted=8)) == 1


def test_the_same_windows_and_losses_at_every_evaluation(data):
    model = tiny_model()
    ev = evaluator(data)
    first = {split: o.copy() for split, o in ev.offsets.items()}
    a = ev.evaluate(model)
    b = ev.evaluate(model)
    assert a.losses == b.losses  # bitwise: same windows, eval mode (no dropout)
    assert all(np.array_equal(first[s], ev.offsets[s]) for s in first)
    again = evaluator(data)  # a new run (or a resume) of the same config chooses the same windows
    assert all(np.array_equal(first[s], again.offsets[s]) for s in first)
    assert model.training  # back in train mode after


def test_loss_is_the_mean_of_a_plain_forward_over_the_windows_and_tokens_are_reported(data):
    model = tiny_model()
    ev = evaluator(data, batch_size=4, eval_iters=3)
    result = ev.evaluate(model)
    model.eval()
    for split, path in (("train", data.train_path), ("val", data.val_path)):
        tokens = np.fromfile(path, dtype=np.uint16).astype(np.int64)
        offsets = ev.offsets[split]
        assert len(offsets) == 12  # eval_iters x batch_size
        losses = []
        with torch.no_grad():
            for o in offsets:  # one window at a time, no batching
                window = torch.from_numpy(tokens[o:o + BLOCK + 1])[None]
                _, loss = model(window[:, :-1], window[:, 1:])
                losses.append(loss.item())
        assert result.losses[split] == pytest.approx(sum(losses) / len(losses), rel=1e-5)
        assert result.tokens[split] == 12 * BLOCK


def test_a_smaller_batch_after_out_of_memory_keeps_the_windows_and_the_loss(data):
    model = tiny_model()
    ev = evaluator(data, batch_size=4, eval_iters=3)
    before = ev.evaluate(model)
    ev.set_batch_size(3)  # 12 windows in batches of 3
    assert [n for _, _, n in ev.batches("val")] == [3, 3, 3, 3]
    after = ev.evaluate(model)
    assert after.tokens == before.tokens
    for split in before.losses:
        assert after.losses[split] == pytest.approx(before.losses[split], rel=1e-5)
    ev.set_batch_size(5)  # a last, partial batch: weighted by its windows
    assert [n for _, _, n in ev.batches("val")] == [5, 5, 2]
    assert ev.evaluate(model).losses["val"] == pytest.approx(before.losses["val"], rel=1e-5)
