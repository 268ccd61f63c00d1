"""The modern recipe (trainer/recipe.py): its keys and their resolution, the model's switches, the KV cache with
rotary positions and QK-norm, the figures and memory terms, checkpoints for `fwtui sample`, and compile."""

from __future__ import annotations

import pytest
import torch

from trainer.config import RunConfig, apply_overrides, config_from_mapping, config_to_toml, load_preset
from trainer.errors import CheckpointError, ConfigError
from trainer.model.formulas import count_params, figures_for, flops_per_token
from trainer.model.gpt import GPT, KVCache, ModelArgs
from trainer.plan.memory import estimate_memory
from trainer.recipe import MODEL_SWITCHES, RECIPES
from trainer.train.checkpoint import load_checkpoint
from trainer.train.from_checkpoint import load_model, require_nanogpt_shape
from trainer.train.resume import check_resume

from tests.engine_helpers import train
from tests.tiny_trainer_child import tiny

TINY = dict(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=256)
# every model switch on (the modern recipe's defaults leave some off where bench/recipe.py's ablation says so)
MODERN = {k: 30.0 if k == "logit_softcap" else True for k in MODEL_SWITCHES}


def test_the_recipe_chooses_the_switches_left_unset_and_config_toml_holds_them_resolved():
    nano, modern = RunConfig(), RunConfig(recipe="modern")
    assert all(getattr(nano, k) == v for k, v in RECIPES["nanogpt"].items())
    assert all(getattr(modern, k) == v for k, v in RECIPES["modern"].items())
    assert "rotary = true" in config_to_toml(modern) and "logit_softcap = 0.0" in config_to_toml(modern)
    assert "rotary = false" in config_to_toml(nano)
    # --set recipe=modern turns on what the old recipe had chosen; a switch set with it stays as set
    cpu = load_preset("cpu-tiny")
    assert apply_overrides(cpu, ["recipe=modern"]).rotary is True
    both = apply_overrides(cpu, ["recipe=modern", "rotary=false"])
    assert both.rotary is False and both.qk_norm is True
    back = apply_overrides(load_preset("cpu-tiny-modern"), ["recipe=nanogpt"])
    assert back.model_args() == cpu.model_args() and back.muon is False
    # a run's own config.toml read back is the same config (every switch resolved)
    values = {k: v for k, v in both.to_dict().items() if v is not None}
    assert config_from_mapping(values, "config.toml") == both


def test_bad_recipe_values_fail_with_one_line_naming_the_key():
    for key, value, words in (("recipe", "llama", "nanogpt"), ("logit_softcap", -1.0, "0 (off)"),
                              ("muon_lr", 0.0, "above 0"), ("muon_momentum", 1.0, "below 1")):
        with pytest.raises(ConfigError) as err:
            apply_overrides(load_preset("cpu-tiny"), {key: value})
        assert key in str(err.value) and words in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="even head size"):
        apply_overrides(load_preset("cpu-tiny"), {"recipe": "modern", "n_embd": 66, "n_head": 2})


def test_each_switch_changes_the_model_and_nanogpt_keeps_its_keys():
    nano = GPT(ModelArgs(**TINY))
    modern = GPT(ModelArgs(**TINY, **MODERN))
    assert nano.args.is_nanogpt and not modern.args.is_nanogpt
    assert "transformer.wpe.weight" in nano.state_dict() and "transformer.wpe.weight" not in modern.state_dict()
    assert nano.lm_head.weight is nano.transformer.wte.weight
    assert modern.lm_head.weight is not modern.transformer.wte.weight and not modern.lm_head.weight.any()
    assert not modern.transformer.h[0].attn.c_proj.weight.any() and not modern.transformer.h[1].mlp.c_proj.weight.any()
    assert set(modern.state_dict()) == set(nano.state_dict()) - {"transformer.wpe.weight"}  # same names otherwise
    idx = torch.randint(0, 256, (2, 16))
    modern.lm_head.weight.data.normal_(0, 1.0)  # large logits, so the cap shows
    logits, _ = modern(idx, idx)
    assert logits.abs().max() < 30.0
    for name in MODERN:  # every switch alone builds and runs, and matches its parameter count
        off = 0.0 if name == "logit_softcap" else False
        args = {**MODERN, name: off}
        model = GPT(ModelArgs(**TINY, **args))
        assert model(idx, idx)[1].isfinite()
        config = RunConfig(**TINY, recipe="modern", **args)
        assert count_params(config).total == model.num_params(non_embedding=False)


def test_decoding_with_the_cache_equals_the_full_forward_under_rotary_and_qk_norm():
    torch.manual_seed(0)
    model = GPT(ModelArgs(**TINY, **{**MODERN, "zero_init_proj": False, "untied_head": False})).eval()
    idx = torch.randint(0, 256, (2, 12))
    with torch.no_grad():
        cache = KVCache(TINY["n_layer"])
        first = model.decode(idx[:, :5], cache)  # the prompt
        assert torch.allclose(first, model(idx[:, :5])[0], atol=1e-5)
        one = model.decode(idx[:, 5:6], cache)  # one token at position 5: the rotary angle of position 5
        assert torch.allclose(one, model(idx[:, :6])[0], atol=1e-5)
        several = model.decode(idx[:, 6:12], cache)  # several after cached ones
        assert torch.allclose(several, model(idx)[0], atol=1e-5)
        # greedy generation past block_size: cached and uncached give the same tokens
        prompt = idx[:1, :4]
        cached = model.generate(prompt, 20, temperature=0, kv_cache=True)
        plain = model.generate(prompt, 20, temperature=0, kv_cache=False)
    assert torch.equal(cached, plain)


def test_figures_and_memory_know_the_untied_head_and_muons_one_buffer():
    nano = load_preset("rtx4070-12gb")
    modern = load_preset("rtx4070-12gb-modern").replace(untied_head=True)
    fn, fm = figures_for(nano), figures_for(modern)
    v, d = modern.vocab_size, modern.n_embd
    assert fm.params.untied_head == v * d
    assert fm.params.total == fn.params.total + v * d - modern.block_size * d  # head added, wpe gone
    # the untied head adds no FLOPs a token; the position table never had any
    assert flops_per_token(modern) == flops_per_token(nano)
    muon = fm.params.muon
    assert muon == modern.n_layer * 12 * d * d
    assert fm.optimizer_bytes == 4 * muon + 8 * (fm.params.total - muon)
    estimate = estimate_memory(modern, on_cuda=True)
    assert estimate.breakdown["optimizer"] == fm.optimizer_bytes
    assert estimate.total_bytes < 12 * 1024**3  # the preset fits the card it names, by the planner's estimate
    assert load_preset("rtx4070-12gb-modern").n_layer == nano.n_layer  # the same shape as its nanoGPT preset


def test_a_modern_run_samples_and_refuses_a_nanogpt_export(pattern_data, tmp_path):
    config = tiny(recipe="modern", untied_head=True, max_iters=6, lr_decay_iters=6, eval_interval=3)
    _, trainer, reason = train(pattern_data, tmp_path / "run", config)
    assert reason == "completed"
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt["model_args"]["rotary"] is True and "momentum_buffer" in str(ckpt["optimizer"]["state"])
    model, _ = load_model(tmp_path / "run")  # what `fwtui sample` loads
    assert model.args.rotary and model.args.untied_head
    assert torch.equal(model.lm_head.weight, trainer.raw_model.lm_head.weight)
    out = model.generate(torch.zeros((1, 1), dtype=torch.long), 5, temperature=0)
    assert out.shape == (1, 6)
    with pytest.raises(CheckpointError) as err:
        require_nanogpt_shape(ckpt, tmp_path / "run" / "ckpt.pt")
    assert "modern-recipe" in str(err.value) and "recipe=nanogpt" in str(err.value) and "\n" not in str(err.value)
    # the same weights under nanoGPT's model_args (switches lost): one line that says what it is
    stripped = dict(ckpt, model_args={k: v for k, v in ckpt["model_args"].items() if k not in MODEL_SWITCHES})
    torch.save(stripped, tmp_path / "stripped.pt")
    with pytest.raises(CheckpointError, match="modern-recipe model"):
        load_model(tmp_path / "stripped.pt")
    require_nanogpt_shape({"model_args": TINY}, "x")  # nanoGPT's model_args: no complaint
    # a resume that would flip a switch (another model, another optimizer state) is refused in one line
    nanogpt = {k: v for k, v in RECIPES["nanogpt"].items()}
    for change in ({"rotary": False}, {"muon": False}, nanogpt):
        with pytest.raises(CheckpointError) as err:
            check_resume(ckpt, config.replace(max_iters=12, **change), {}, "ckpt.pt")
        assert "the run trained with" in str(err.value) and "\n" not in str(err.value)
    check_resume({k: v for k, v in ckpt.items() if k != "dataset"}, config.replace(max_iters=12), {},
                 "ckpt.pt")  # its own recipe: fine


@pytest.mark.slow
def test_the_modern_model_compiles_on_cpu_and_matches_eager():
    torch.manual_seed(0)
    model = GPT(ModelArgs(**{**TINY, "n_layer": 1}, **{**MODERN, "zero_init_proj": False}))  # one block: compile time
    idx = torch.randint(0, 256, (2, 16))
    eager_logits, eager_loss = model(idx, idx)
    compiled = torch.compile(model)
    logits, loss = compiled(idx, idx)
    loss.backward()
    assert torch.allclose(loss, eager_loss, atol=1e-5) and torch.allclose(logits, eager_logits, atol=1e-4)
    assert model.transformer.h[0].attn.c_attn.weight.grad is not None
