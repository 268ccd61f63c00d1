"""Bits per byte (trainer.data.bpb, the Evaluator, the Eval event): checked against a hand computation on a
small text, the loss summed with torch's cross entropy and the bytes counted from the text itself."""

from __future__ import annotations

import json
import math

import numpy as np
import torch
import torch.nn.functional as F

from trainer.data.bpb import bits_per_byte, token_byte_lengths
from trainer.data.tokenizer import EOT, get_encoding
from trainer.model.gpt import GPT, ModelArgs
from trainer.observe.events import Eval, event_from_dict
from trainer.train.evaluator import Evaluator

FIRST = "Grüße aus Zürich — ☃ snow in naïve café, 3.14 € each!"
SECOND = "The quick brown fox jumps over the lazy dog; ünïcode and ASCII mixed, again and again and again."


def test_the_byte_table_is_each_tokens_utf8_length():
    table, enc = token_byte_lengths(), get_encoding()
    tokens = enc.encode_ordinary(FIRST)
    assert sum(int(table[t]) for t in tokens) == len(FIRST.encode("utf-8"))  # byte-level BPE: pieces of the text
    assert table[EOT] == 0  # not text
    assert table[enc.encode_ordinary(" the")[0]] == 4 and table[50256 + 1] == 0


def test_bits_per_byte_of_the_evaluator_matches_a_hand_computation(tmp_path):
    enc = get_encoding()
    first = enc.encode_ordinary(FIRST)
    block = len(first)
    second = enc.encode_ordinary(SECOND)[:block]
    assert len(second) == block
    # Two windows of block + 1 tokens, each <|endoftext|> then a text: the targets are exactly the texts.
    windows = [[EOT, *first], [EOT, *second]]
    for split in ("train", "val"):
        np.array([t for w in windows for t in w], dtype=np.uint16).tofile(tmp_path / f"{split}.bin")
    torch.manual_seed(0)
    model = GPT(ModelArgs(n_layer=1, n_head=2, n_embd=16, block_size=block, vocab_size=50304, dropout=0.0))
    evaluator = Evaluator(train_path=tmp_path / "train.bin", val_path=tmp_path / "val.bin", block_size=block,
                          batch_size=1, eval_iters=2, device="cpu", token_bytes=token_byte_lengths())
    result = evaluator.evaluate(model)

    model.eval()
    nats = 0.0
    with torch.no_grad():
        for w in windows:
            x, y = torch.tensor([w[:-1]]), torch.tensor(w[1:])
            logits, _ = model(x, y[None])
            nats += F.cross_entropy(logits[0].float(), y, reduction="sum").item()
    text_bytes = len(FIRST.encode("utf-8")) + len(enc.decode_bytes(second))
    assert evaluator.target_bytes == {"train": text_bytes, "val": text_bytes}
    expected = nats / math.log(2) / text_bytes
    assert result.bpb["val"] == result.bpb["train"]
    assert math.isclose(result.bpb["val"], expected, rel_tol=1e-5)
    # and the same figure from the loss in nats/token: loss x tokens / ln 2 / bytes
    assert math.isclose(result.losses["val"] * 2 * block / math.log(2) / text_bytes, expected, rel_tol=1e-5)


def test_no_byte_table_no_bits_per_byte_and_no_bytes_is_none(tmp_path):
    np.arange(300, dtype=np.uint16).tofile(tmp_path / "t.bin")
    result = Evaluator(train_path=tmp_path / "t.bin", val_path=tmp_path / "t.bin", block_size=8, batch_size=2,
                       eval_iters=1, device="cpu").evaluate(
        GPT(ModelArgs(n_layer=1, n_head=1, n_embd=8, block_size=8, vocab_size=512, dropout=0.0)))
    assert result.bpb is None
    assert bits_per_byte(5.0, 0) is None and bits_per_byte(math.log(2) * 10, 5) == 2.0


def test_an_eval_line_written_before_bits_per_byte_still_reads():
    old = {"kind": "eval", "time": 1.0, "iter": 10, "train_loss": 4.0, "val_loss": 4.1, "best_val_loss": 4.1,
           "seconds": 0.5}
    event = event_from_dict(json.loads(json.dumps(old)))
    assert isinstance(event, Eval) and event.val_bpb is None and event.train_bpb is None


def test_a_runs_eval_events_carry_bits_per_byte(pattern_data, tmp_path):
    """The pattern data's ids are below 256: GPT-2's single-byte tokens, so bits per byte is the loss / ln 2."""
    from tests.engine_helpers import train

    rec, _, _ = train(pattern_data, tmp_path / "run")
    evals = rec.of(Eval)
    assert evals
    for e in evals:
        assert math.isclose(e.val_bpb, e.val_loss / math.log(2), rel_tol=1e-6)
        assert math.isclose(e.train_bpb, e.train_loss / math.log(2), rel_tol=1e-6)


def test_each_rank_counts_the_bytes_of_every_window_not_only_its_share(tmp_path):
    """With several ranks each evaluates windows r, r+N, ...; bits per byte's denominator is all windows' bytes
    (every rank the same number), so the all-reduced loss sum over it is the one-process figure."""
    from trainer.train.distributed import Dist

    enc = get_encoding()
    tokens = np.array(enc.encode_ordinary((FIRST + " " + SECOND + " ") * 8), dtype=np.uint16)
    tokens.tofile(tmp_path / "d.bin")
    args = dict(train_path=tmp_path / "d.bin", val_path=tmp_path / "d.bin", block_size=16, batch_size=2,
                eval_iters=3, device="cpu", token_bytes=token_byte_lengths())
    alone = Evaluator(**args)
    second = Evaluator(**args, ranks=Dist(rank=1, world_size=2))
    assert len(second.mine["val"]) < len(alone.offsets["val"])  # its share of the windows
    assert second.target_bytes == alone.target_bytes  # but the bytes of all of them
    windows = np.stack([tokens[o:o + 17] for o in alone.offsets["val"]])
    assert alone.target_bytes["val"] == len(enc.decode_bytes(windows[:, 1:].ravel().tolist()))
