"""Presets load into validated RunConfigs; every bad value fails with one line naming file, field, value."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.config import (
    RunConfig, all_presets, apply_overrides, config_from_mapping, config_to_toml, load_preset, parse_override,
    preset_paths,
)
from trainer.errors import ConfigError
from trainer.model.formulas import count_params, flops_per_token

SEED_PRESETS = {
    "rtx4070-12gb", "rtx4070-12gb-small", "rtx4070-12gb-long", "lt16gb", "16gb", "24gb", "24gb-large",
    "48gb", "80gb", "gpt2-124m", "cpu-tiny",
}


def test_every_seed_preset_ships_and_loads():
    assert SEED_PRESETS <= set(preset_paths())
    configs = {c.name: c for c in all_presets()}
    assert configs["rtx4070-12gb"].tokens_per_iter == 16 * 1024 * 32 == 524_288
    assert configs["gpt2-124m"].tokens_per_iter == 12 * 1024 * 40
    tiny = configs["cpu-tiny"]
    assert (tiny.n_layer, tiny.n_head, tiny.n_embd, tiny.block_size) == (2, 2, 64, 128)
    assert tiny.compile is False


@pytest.mark.parametrize(
    ("shape", "expected_millions"),
    [((12, 12, 768), 123.59), ((12, 8, 512), 63.52), ((12, 6, 384), 40.56), ((10, 10, 640), 81.36),
     ((12, 12, 672), 98.85), ((8, 8, 512), 50.93), ((6, 6, 384), 29.94)],
)
def test_parameter_counts_match_reference(shape, expected_millions):
    layers, heads, width = shape
    config = RunConfig(n_layer=layers, n_head=heads, n_embd=width)
    assert round(count_params(config).nanogpt / 1e6, 2) == expected_millions


def test_flops_per_token_gpt2_small():
    # 6N + 12·L·H·Q·T for 12/12/768 at T=1024: about 855M FLOPs per token (REFERENCE.md section 4).
    assert round(flops_per_token(RunConfig()) / 1e6) == 855


def test_mistyped_key_names_the_nearest(tmp_path: Path):
    path = tmp_path / "mine.toml"
    path.write_text("n_layers = 4\n")
    with pytest.raises(ConfigError, match=r"unknown key 'n_layers'; did you mean 'n_layer'\?"):
        load_preset(path)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("n_embd = 100\nn_head = 12", "n_embd"),
        ("batch_size = 0", "batch_size"),
        ("block_size = -1", "block_size"),
        ("warmup_iters = -5", "warmup_iters"),
        ("learning_rate = nan", "learning_rate"),
        ("learning_rate = inf", "learning_rate"),
        ("learning_rate = 1e9", "learning_rate"),
        ("dropout = 1.0", "dropout"),
        ("weight_decay = -0.1", "weight_decay"),
        ('batch_size = "32"', "batch_size"),
        ("eval_interval = 0", "eval_interval"),
        ("vocab_size = 1000", "vocab_size"),
        ("learning_rate = 1e-3\nmin_lr = 1e-2", "min_lr"),  # a warm-up as long as the run is a warning
    ],
)
def test_bad_values_fail_with_one_line_naming_file_field_value(tmp_path: Path, text: str, field: str):
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as info:
        load_preset(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message and f"{field} = " in message


def test_nanogpt_py_config_is_read_without_executing(tmp_path: Path):
    marker = tmp_path / "executed"
    path = tmp_path / "train_fineweb.py"
    path.write_text(
        "# config for training GPT-2 on FineWeb\n"
        "import os\n"
        f"wandb_run_name = os.system('touch {marker}')  # an ignored key's call: never evaluated\n"
        "out_dir = 'out-fineweb'\n"
        "wandb_log = False\n"
        "n_layer = 6\nn_head = 6\nn_embd = 384\n"
        "batch_size = 16\ngradient_accumulation_steps = 32\n"
        "learning_rate = 6e-4\nmax_iters = 8000\nlr_decay_iters = 8000\nwarmup_iters = 500\nmin_lr = 6e-5\n"
        "beta2 = 0.99\ncompile = True\n"
    )
    config = load_preset(path)
    assert not marker.exists()
    assert (config.n_layer, config.n_embd, config.compile, config.name) == (6, 384, True, "train_fineweb")
    assert config.tokens_per_iter == 16 * 1024 * 32


def test_nanogpt_py_names_set_earlier_are_read_and_a_call_is_refused_with_its_line(tmp_path: Path):
    path = tmp_path / "cfg.py"
    path.write_text("max_iters = 5000\nlr_decay_iters = max_iters\n")
    assert load_preset(path).lr_decay_iters == 5000
    path.write_text("max_iters = 5000\nlr_decay_iters = int(max_iters)\n")
    with pytest.raises(ConfigError, match=r"cfg.py:2: lr_decay_iters = int\(max_iters\): a function call"):
        load_preset(path)


def test_overrides_are_typed_and_validated():
    base = load_preset("cpu-tiny")
    changed = apply_overrides(base, ["batch_size=4", "learning_rate=1e-3", "compile=true", "device=cpu"])
    assert (changed.batch_size, changed.learning_rate, changed.compile, changed.device) == (4, 1e-3, True, "cpu")
    assert changed.min_lr == pytest.approx(1e-4)  # followed learning_rate / 10
    with pytest.raises(ConfigError, match=r"--set: batch_size = 'x'"):
        apply_overrides(base, ["batch_size=x"])
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_override("batch_size")
    assert parse_override("description=a=b") == ("description", "a=b")


def test_max_iters_override_moves_the_decay_end():
    changed = apply_overrides(load_preset("cpu-tiny"), ["max_iters=60"])
    assert changed.lr_decay_iters == 60


def test_unknown_preset_suggests_the_nearest():
    with pytest.raises(ConfigError, match=r"did you mean 'cpu-tiny'"):
        load_preset("cpu-tine")


def test_user_presets_are_found(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("FWTUI_CONFIG_DIR", str(tmp_path))
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "my-3090.toml").write_text('vram_tier = "24 GB"\nn_layer = 4\nbatch_size = 4\n')
    config = load_preset("my-3090")
    assert (config.name, config.n_layer) == ("my-3090", 4)


def test_resolved_config_round_trips_through_toml(tmp_path: Path):
    config = apply_overrides(load_preset("rtx4070-12gb"), ["description=\"quotes \\\" and = signs\""])
    path = tmp_path / "config.toml"
    path.write_text(config_to_toml(config))
    again = load_preset(path)
    assert again.to_dict() == config.to_dict()


def test_config_from_mapping_ignores_nanogpt_only_keys():
    config = config_from_mapping({"wandb_log": True, "out_dir": "x", "n_layer": 3}, "test")
    assert config.n_layer == 3
