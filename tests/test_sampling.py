"""Sampling: decoded text, an isolated RNG, the model's mode restored, safe checkpoint loading, `fwtui sample`."""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from fwtui.cli import main as cli_main
from trainer.errors import CheckpointError
from trainer.model.gpt import GPT, ModelArgs
from trainer.model.sampling import EOT, generate_text
from trainer.train.from_checkpoint import load_model
from trainer.data.tokenizer import get_encoding

TINY = dict(n_layer=2, n_head=2, n_embd=32, block_size=32, vocab_size=50304)


@pytest.fixture(scope="module")
def encoding():
    return get_encoding()


def tiny(seed: int = 0, **over) -> GPT:
    torch.manual_seed(seed)
    return GPT(ModelArgs(**{**TINY, **over}))


def save_ckpt(model: GPT, path: Path, iter_num: int = 7) -> Path:
    a = model.args
    torch.save({"model": model.state_dict(), "optimizer": {}, "iter_num": iter_num, "best_val_loss": 9.5,
                "model_args": dict(n_layer=a.n_layer, n_head=a.n_head, n_embd=a.n_embd, block_size=a.block_size,
                                   bias=a.bias, vocab_size=a.vocab_size, dropout=a.dropout),
                "config": {"name": "test"}}, path)
    return path


def test_sampling_returns_decoded_text(encoding):
    text = generate_text(tiny(), encoding, "The quick brown fox", max_new_tokens=12, seed=1)
    assert isinstance(text, str) and text.strip()
    assert not text.startswith("The quick brown fox")  # the continuation only


def test_same_seed_same_text_and_another_seed_other_text(encoding):
    model = tiny()
    a = generate_text(model, encoding, "Once upon", max_new_tokens=20, seed=5)
    b = generate_text(model, encoding, "Once upon", max_new_tokens=20, seed=5)
    c = generate_text(model, encoding, "Once upon", max_new_tokens=20, seed=6)
    assert a == b
    assert a != c


def test_global_rng_states_are_unchanged(encoding):
    model = tiny()
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    generate_text(model, encoding, "hello", max_new_tokens=10)  # seed None: from os.urandom
    generate_text(model, encoding, "hello", max_new_tokens=10, seed=3)
    assert torch.equal(torch.get_rng_state(), before[0])
    assert np.array_equal(np.random.get_state()[1], before[1])
    assert random.getstate() == before[2]


@pytest.mark.parametrize("training", [True, False])
def test_model_mode_is_restored(encoding, training):
    model = tiny(dropout=0.1)
    model.train(training)
    seen = []
    model.transformer.h[0].mlp.register_forward_hook(lambda m, i, o: seen.append(m.training))
    generate_text(model, encoding, "x", max_new_tokens=3, seed=0)
    assert seen == [False, False, False]  # sampled in eval mode: no dropout
    assert model.training is training
    assert all(m.training is training for m in model.modules())


def test_a_training_runs_losses_are_identical_with_or_without_sampling(encoding):
    """Dropout draws from the global RNG: a sample that touched it would change every later loss."""

    def losses(sample_every_step: bool) -> list[float]:
        model = tiny(seed=0, dropout=0.2)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        torch.manual_seed(42)
        out = []
        for _ in range(4):
            x = torch.randint(0, 50257, (2, 16))
            _, loss = model(x, x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            out.append(loss.item())
            if sample_every_step:
                generate_text(model, encoding, "step", max_new_tokens=4)
        return out

    assert losses(True) == losses(False)


def test_an_empty_prompt_starts_from_end_of_text(encoding):
    model = tiny().eval()
    text = generate_text(model, encoding, "", max_new_tokens=8, temperature=1.0, top_k=None, seed=9)
    expected = model.generate(torch.tensor([[EOT]]), 8, temperature=1.0, top_k=None,
                              generator=torch.Generator().manual_seed(9))[0, 1:].tolist()
    if EOT in expected:
        expected = expected[: expected.index(EOT)]
    assert text == encoding.decode(expected)


class FixedGenerator(torch.nn.Module):
    """A stand-in model whose 'samples' are fixed, to test where the text stops."""

    def __init__(self, continuation: list[int]) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.continuation = continuation

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, generator=None, kv_cache=True,
                 stopping=None):
        return torch.cat([idx, torch.tensor([self.continuation[:max_new_tokens]])], dim=1)


def test_text_stops_at_the_first_end_of_text(encoding):
    hello, world = encoding.encode_ordinary(" hello"), encoding.encode_ordinary(" world")
    model = FixedGenerator(hello + [EOT] + world)
    assert generate_text(model, encoding, "say", max_new_tokens=10, seed=0) == " hello"
    assert generate_text(FixedGenerator([EOT] + hello), encoding, "say", seed=0) == ""


def test_bad_sampling_values_are_refused(encoding):
    from trainer.errors import ConfigError

    with pytest.raises(ConfigError, match="temperature"):
        generate_text(tiny(), encoding, "x", temperature=-1)


def test_a_compiled_wrapper_samples_on_its_eager_module(encoding):
    model = tiny()

    class Wrapper(torch.nn.Module):  # what torch.compile returns: the module under `_orig_mod`
        def __init__(self, inner):
            super().__init__()
            self._orig_mod = inner

        def generate(self, *a, **k):
            raise AssertionError("sampled through the compiled wrapper")

    assert generate_text(Wrapper(model), encoding, "a", max_new_tokens=3, seed=2) == \
        generate_text(model, encoding, "a", max_new_tokens=3, seed=2)


class WritesAMarker:
    """A pickle payload: unpickling it calls Path.write_text, as an attacker's ckpt.pt would run code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_a_malicious_pickle_is_refused_and_never_runs(tmp_path, writer):
    marker = tmp_path / "marker.txt"
    payload = {"model": WritesAMarker(marker), "model_args": dict(TINY)}
    path = tmp_path / "ckpt.pt"
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f, protocol=2)  # torch.load's own protocol
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    assert str(err.value).count("\n") == 0 and str(path) in str(err.value)
    assert not marker.exists()
    # The payload is live: plain unpickling would have run it (so the refusal above is what protected us).
    if writer == "pickle.dump":
        with open(path, "rb") as f:
            pickle.load(f)  # noqa: S301 - deliberately, in a test, to prove the payload works
        assert marker.read_text() == "pwned"


def test_a_missing_checkpoint_names_the_path_and_the_fix(tmp_path):
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*ckpt\.pt: train first"):
        load_model(tmp_path)  # an empty run directory
    with pytest.raises(CheckpointError, match="nothere.pt"):
        load_model(tmp_path / "nothere.pt")


def test_a_damaged_file_is_one_line_not_a_traceback(tmp_path):
    (tmp_path / "ckpt.pt").write_bytes(b"hello, not a checkpoint")
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path)
    assert str(tmp_path / "ckpt.pt") in str(err.value) and "\n" not in str(err.value)


def test_a_file_that_is_not_a_checkpoint_dict_is_refused(tmp_path):
    torch.save(torch.zeros(3), tmp_path / "t.pt")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_model(tmp_path / "t.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "d.pt")
    with pytest.raises(CheckpointError, match="no 'model_args' entry"):
        load_model(tmp_path / "d.pt")


def test_cli_sample_prints_each_sample_and_a_rule(tmp_path, capsys):
    save_ckpt(tiny(), tmp_path / "ckpt.pt")
    argv = ["sample", str(tmp_path), "--prompt", "Hello there", "--max-new-tokens", "6",
            "--num-samples", "2", "--seed", "11", "--device", "cpu"]
    assert cli_main(argv) == 0
    out, err = capsys.readouterr()
    samples = out.split("-" * 40 + "\n")
    assert samples[-1] == "" and len(samples) == 3  # two samples, each followed by the rule
    assert all(s.startswith("Hello there") and len(s) > len("Hello there\n") for s in samples[:2])
    assert "iteration 7" in err and "in float32" in err  # the config's dtype (none: auto) on a CPU
    assert cli_main(argv) == 0
    assert capsys.readouterr().out == out  # the same seed gives the same samples


def test_cli_sample_runs_in_the_runs_precision(tmp_path, capsys):
    path = save_ckpt(tiny(), tmp_path / "ckpt.pt")
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"]["dtype"] = "bfloat16"  # a run that trained in bf16 samples in bf16
    torch.save(ckpt, path)
    assert cli_main(["sample", str(path), "--max-new-tokens", "3", "--seed", "1", "--device", "cpu"]) == 0
    assert "in bfloat16" in capsys.readouterr().err


def test_cli_sample_missing_path_is_one_line_and_exit_2(tmp_path, capsys):
    assert cli_main(["sample", str(tmp_path / "no-run"), "--prompt", "x"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("fwtui: error: no checkpoint at ")


def test_cli_sample_refuses_a_character_level_checkpoint(tmp_path, capsys):
    save_ckpt(tiny(vocab_size=65), tmp_path / "ckpt.pt")
    assert cli_main(["sample", str(tmp_path / "ckpt.pt"), "--device", "cpu"]) == 2
    assert "vocab_size 65" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_sampling_on_cuda_leaves_the_cuda_rng_alone(encoding):
    model = tiny().cuda()
    torch.cuda.manual_seed(7)
    before = torch.cuda.get_rng_state()
    a = generate_text(model, encoding, "On the GPU", max_new_tokens=16, seed=4)  # bf16/fp16 autocast
    assert torch.equal(torch.cuda.get_rng_state(), before)
    assert a and a == generate_text(model, encoding, "On the GPU", max_new_tokens=16, seed=4)
