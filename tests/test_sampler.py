"""The Sampler alone: a Sample event with the pause it cost, the tokenizer loaded at the first sample only,
the training RNG and the module's mode untouched, and a failure that is a Warning, not the end of a run."""

from __future__ import annotations

import torch

from trainer.data import tokenizer
from trainer.model.gpt import GPT, ModelArgs
from trainer.observe import events as ev
from trainer.train.controls import SampleRequest
from trainer.train.sampler import Sampler

TINY = dict(vocab_size=256, block_size=16, n_layer=1, n_head=2, n_embd=32, dropout=0.0, bias=True)


def test_a_sample_is_an_event_with_its_pause_and_leaves_the_run_as_it_was(monkeypatch):
    torch.manual_seed(0)
    model = GPT(ModelArgs(**TINY)).train()
    loads = []
    real_get_encoding = tokenizer.get_encoding
    monkeypatch.setattr(tokenizer, "get_encoding", lambda *a: loads.append(a) or real_get_encoding(*a))
    events: list[ev.Event] = []
    sampler = Sampler(model, device="cpu", precision="float32", emit=events.append)
    assert loads == []  # constructing it loads nothing: training never needs the tokenizer
    rng_before = torch.get_rng_state()
    weights_before = {k: v.clone() for k, v in model.state_dict().items()}
    # "a" is GPT-2 id 64, inside the 256-token toy vocabulary; temperature 0 is greedy.
    paused = sampler.sample(SampleRequest(prompt="a", max_new_tokens=6, temperature=0.0, top_k=None), it=12)
    again = sampler.sample(SampleRequest(prompt="a", max_new_tokens=6, temperature=0.0, top_k=None), it=13)
    first, second = events
    assert isinstance(first, ev.Sample) and (first.iter, first.prompt) == (12, "a")
    assert first.seconds == paused > 0 and second.seconds == again > 0
    assert first.text == second.text  # greedy: the same model gives the same text
    assert len(loads) == 1  # loaded once, at the first sample
    assert torch.equal(torch.get_rng_state(), rng_before)  # the training RNG is not drawn from
    assert model.training  # back in train mode
    assert all(torch.equal(v, weights_before[k]) for k, v in model.state_dict().items())


def test_a_failed_sample_is_a_warning_and_no_sample_event():
    events: list[ev.Event] = []
    sampler = Sampler(GPT(ModelArgs(**TINY)), device="cpu", precision="float32", emit=events.append)
    sampler.sample(SampleRequest(prompt="a", max_new_tokens=-1), it=3)
    (warning,) = events
    assert isinstance(warning, ev.Warning)
    assert warning.message.startswith("sample failed: ConfigError: max_new_tokens = -1")
