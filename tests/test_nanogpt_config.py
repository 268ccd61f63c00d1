"""nanoGPT config `.py` files load as written (arithmetic on literals, earlier names), are never executed,
and everything else is one line naming file:line and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from fwtui.cli import main as cli_main
from trainer.config import load_preset
from trainer.errors import ConfigError
from trainer.nanogpt_config import read_nanogpt_py

# nanoGPT's own config files (karpathy/nanoGPT, config/), as they are written there.
TRAIN_GPT2 = """\
# config for training GPT-2 (124M) down to very nice loss of ~2.85 on 1 node of 8X A100 40GB
# launch as the following (e.g. in a screen session) and wait ~5 days:
# $ torchrun --standalone --nproc_per_node=8 train.py config/train_gpt2.py

wandb_log = True
wandb_project = 'owt'
wandb_run_name='gpt2-124M'

# these make the total batch size be ~0.5M
# 12 batch size * 1024 block size * 5 gradaccum * 8 GPUs = 491,520
batch_size = 12
block_size = 1024
gradient_accumulation_steps = 5 * 8

# this makes total number of tokens be 300B
max_iters = 600000
lr_decay_iters = 600000

# eval stuff
eval_interval = 1000
eval_iters = 200
log_interval = 10

# weight decay
weight_decay = 1e-1
"""

TRAIN_SHAKESPEARE_CHAR = """\
# train a miniature character-level shakespeare model
# good for debugging and playing on macbooks and such

out_dir = 'out-shakespeare-char'
eval_interval = 250 # keep frequent because we'll overfit
eval_iters = 200
log_interval = 10 # don't print too too often

# we expect to overfit on this small dataset, so only save when val improves
always_save_checkpoint = False

wandb_log = False # override via command line if you like
wandb_project = 'shakespeare-char'
wandb_run_name = 'mini-gpt'

dataset = 'shakespeare_char'
gradient_accumulation_steps = 1
batch_size = 64
block_size = 256 # context of up to 256 previous characters

# baby GPT model :)
n_layer = 6
n_head = 6
n_embd = 384
dropout = 0.2

learning_rate = 1e-3 # with baby networks can afford to go a bit higher
max_iters = 5000
lr_decay_iters = 5000 # make equal to max_iters usually
min_lr = 1e-4 # learning_rate / 10 usually
beta2 = 0.99 # make a bit bigger because number of tokens per iter is small

warmup_iters = 100 # not super necessary potentially

# on macbook also add
# device = 'cpu'  # run on cpu only
# compile = False # do not torch compile the model
"""

FINETUNE_SHAKESPEARE = """\
import time

out_dir = 'out-shakespeare'
eval_interval = 5
eval_iters = 40
wandb_log = False # feel free to turn on
wandb_project = 'shakespeare'
wandb_run_name = 'ft-' + str(time.time())

dataset = 'shakespeare'
init_from = 'gpt2-xl' # this is the largest GPT-2 model

# only save checkpoints if the validation loss improves
always_save_checkpoint = False

# the number of examples per iter:
# 1 batch_size * 32 grad_accum * 1024 tokens = 32,768 tokens/iter
# shakespeare has 301,966 tokens, so 1 epoch ~= 9.2 iters
batch_size = 1
gradient_accumulation_steps = 32
max_iters = 20

# finetune at constant LR
learning_rate = 3e-5
decay_lr = False
"""

EVAL_GPT2 = """\
# evaluate the base gpt2
# n_layer=12, n_head=12, n_embd=768
# 124M parameters
batch_size = 8
eval_iters = 500 # use more iterations to get good estimate
eval_only = True
wandb_log = False
init_from = 'gpt2'
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_train_gpt2_loads_with_its_arithmetic(tmp_path, capsys):
    config = load_preset(write(tmp_path, "train_gpt2.py", TRAIN_GPT2))
    assert config.name == "train_gpt2"
    assert (config.batch_size, config.block_size, config.gradient_accumulation_steps) == (12, 1024, 40)
    assert config.tokens_per_iter == 491_520  # the file's own comment: 12 * 1024 * 5 * 8
    assert (config.max_iters, config.lr_decay_iters, config.weight_decay) == (600000, 600000, 0.1)
    assert (config.eval_interval, config.eval_iters, config.log_interval) == (1000, 200, 10)
    note = capsys.readouterr().err.strip()
    assert note.count("\n") == 0 and "train_gpt2.py: W&B settings honoured by `fwtui train`: wandb_log=True, " \
        "wandb_project='owt', wandb_run_name='gpt2-124M'" in note


def test_train_shakespeare_char_loads(tmp_path, capsys):
    config = load_preset(write(tmp_path, "train_shakespeare_char.py", TRAIN_SHAKESPEARE_CHAR))
    assert (config.n_layer, config.n_head, config.n_embd, config.block_size) == (6, 6, 384, 256)
    assert (config.batch_size, config.gradient_accumulation_steps, config.dropout) == (64, 1, 0.2)
    assert (config.learning_rate, config.min_lr, config.beta2) == (1e-3, 1e-4, 0.99)
    assert (config.max_iters, config.lr_decay_iters, config.warmup_iters) == (5000, 5000, 100)
    assert config.always_save_checkpoint is False
    note = capsys.readouterr().err
    assert "out_dir (--out sets it)" in note and "dataset (--data sets it)" in note


def test_finetune_shakespeare_loads_without_running_its_import(tmp_path, capsys):
    # `import time` and `'ft-' + str(time.time())` belong to a wandb key fwtui ignores: never evaluated.
    config = load_preset(write(tmp_path, "finetune_shakespeare.py", FINETUNE_SHAKESPEARE))
    assert (config.batch_size, config.gradient_accumulation_steps, config.max_iters) == (1, 32, 20)
    assert (config.learning_rate, config.decay_lr) == (3e-5, False)
    assert (config.eval_interval, config.eval_iters, config.always_save_checkpoint) == (5, 40, False)
    note = capsys.readouterr().err
    assert "init_from='gpt2-xl' (fwtui trains from scratch" in note
    assert "import time (line 1), not run" in note and "wandb_run_name" in note


def test_eval_gpt2_loads_and_says_eval_only_is_ignored(tmp_path, capsys):
    config = load_preset(write(tmp_path, "eval_gpt2.py", EVAL_GPT2))
    assert (config.batch_size, config.eval_iters, config.n_layer) == (8, 500, 12)
    assert "eval_only (no eval-only mode)" in capsys.readouterr().err


def test_arithmetic_and_earlier_names(tmp_path):
    path = write(tmp_path, "cfg.py", (
        '"""my FineWeb run"""\n'
        "max_iters = 5000\n"
        "lr_decay_iters = max_iters\n"
        "learning_rate = 6e-4\n"
        "min_lr = learning_rate / 10\n"
        "_per_gpu = 5\n"
        "gradient_accumulation_steps = _per_gpu * 8\n"
        "warmup_iters = max_iters // 25 + 2 ** 3 - 8 % 3\n"
        "beta2 = -(-0.99)\n"
        "n_layer: int = 4\n"
        "eval_iters = 10\n"
        "eval_iters += 5\n"
        "description = 'fine' + 'web'\n"
        "bias = True\n"
        "compile = None\n"
    ))
    found = read_nanogpt_py(path)
    assert "_per_gpu" not in found.values  # a helper name, not a setting
    config = load_preset(path)
    assert config.lr_decay_iters == 5000
    assert config.min_lr == 6e-4 / 10
    assert config.gradient_accumulation_steps == 40
    assert config.warmup_iters == 5000 // 25 + 2**3 - 8 % 3 == 206
    assert (config.beta2, config.n_layer, config.eval_iters) == (0.99, 4, 15)
    assert (config.description, config.bias, config.compile) == ("fineweb", True, None)


def test_a_file_is_never_executed(tmp_path):
    marker = tmp_path / "executed"
    path = write(tmp_path, "evil.py", f"import os; os.system('touch {marker}')\nn_layer = 2\n")
    with pytest.raises(ConfigError) as info:
        load_preset(path)
    assert not marker.exists()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:1: ") and "a bare expression, which nanoGPT would run" in message


@pytest.mark.parametrize(
    ("line", "what"),
    [
        ("learning_rate = float('6e-4')", "a function call"),
        ("learning_rate = math.pi", "an attribute (x.y)"),
        ("n_layer = [i for i in range(3)][0]", "indexing (x[i])"),
        ("n_layer = sum(i for i in range(3))", "a function call"),
        ("description = f'run {1}'", "an f-string"),
        ("lr_decay_iters = max_iters", "max_iters is not set earlier in this file"),
        ("n_layer = 2 ** 1000", "an exponent of 1000 (at most 128)"),
        ("n_layer = 10 ** 100", "a result out of range"),
        ("n_layer = 1 / 0", "arithmetic that fails"),
        ("n_layer = 'a' * 3", "arithmetic on 'a'"),
        ("n_layer = True + 1", "arithmetic on True"),
        ("n_layer = 3 if True else 4", "an if-expression"),
        ("n_layer = b'2'", "bytes literal"),
    ],
)
def test_what_is_not_read_is_one_line_naming_file_line_and_what_is_allowed(tmp_path, line, what):
    path = write(tmp_path, "cfg.py", "batch_size = 4\n" + line + "\n")
    with pytest.raises(ConfigError) as info:
        load_preset(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:2: ")
    assert what in message
    assert "allowed: numbers, strings, True/False/None" in message


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("if True:\n    n_layer = 2\n", "an if block"),
        ("for i in range(2):\n    pass\n", "a for loop"),
        ("def f():\n    return 1\n", "a function definition"),
        ("n_layer, n_head = 2, 2\n", "unpacking"),
    ],
)
def test_statements_other_than_assignments_are_refused(tmp_path, text, what):
    path = write(tmp_path, "cfg.py", text)
    with pytest.raises(ConfigError, match=rf"cfg.py:1: .* is {what}.*only `key = value` lines"):
        load_preset(path)


def test_an_ignored_key_used_later_says_so(tmp_path):
    path = write(tmp_path, "cfg.py", "wandb_run_name = str(1)\ndescription = wandb_run_name\n")
    with pytest.raises(ConfigError, match=r"cfg.py:2: .*the value of wandb_run_name is not read"):
        load_preset(path)


def test_an_unknown_key_still_gets_the_nearest_real_key(tmp_path):
    path = write(tmp_path, "cfg.py", "n_layers = 4 * 2\n")
    with pytest.raises(ConfigError, match=r"unknown key 'n_layers'; did you mean 'n_layer'\?"):
        load_preset(path)


def test_a_bad_value_names_the_file_and_field(tmp_path):
    path = write(tmp_path, "cfg.py", "n_head = 12\nn_embd = 64 * 8 + 6\n")
    with pytest.raises(ConfigError, match=r"cfg.py: n_embd = 518: must be divisible by n_head"):
        load_preset(path)


def test_syntax_errors_and_deep_nesting_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"not a readable Python config"):
        load_preset(write(tmp_path, "broken.py", "n_layer = = 2\n"))
    with pytest.raises(ConfigError) as info:
        load_preset(write(tmp_path, "deep.py", "n_layer = " + "-" * 100_000 + "1\n"))
    assert "nested too deeply" in str(info.value) and "\n" not in str(info.value)


def test_toml_with_nanogpt_keys_names_them_once(tmp_path, capsys):
    path = write(tmp_path, "mine.toml", 'out_dir = "out"\nwandb_log = true\nn_layer = 3\n')
    assert load_preset(path).n_layer == 3
    load_preset(path)  # the app loads a preset more than once: the note shows once
    note = capsys.readouterr().err
    assert note.count("ignored:") == 1 and "out_dir (--out sets it); W&B settings honoured by `fwtui train`: " \
        "wandb_log=True" in note


def test_fwtui_plan_takes_nanogpts_train_gpt2_as_written(tmp_path, capsys):
    # Issue 11, problem 6: this file was refused ("gradient_accumulation_steps is not a literal value").
    from fwtui.cli import main

    path = write(tmp_path, "train_gpt2_plan.py", TRAIN_GPT2)
    assert main(["plan", "--preset", str(path)]) == 0
    out = capsys.readouterr()
    assert "491,520 (12 × 1024 × 40)" in out.out
    assert "W&B settings honoured by `fwtui train`: wandb_log=True" in out.err


def test_a_file_doubling_a_string_is_one_line_never_a_memory_error(tmp_path, capsys):
    """The probe's 41-line file reached 2 GB and "internal error: MemoryError"; strings are capped like numbers."""
    lines = ["description = 'ab'"] + ["description = description + description"] * 40
    path = write(tmp_path, "doubling.py", "\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as info:
        read_nanogpt_py(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}:13: ")  # line k holds 2**k characters: 4096 on line 12
    assert "a string of 8,192 characters (at most 4,096)" in message
    big = write(tmp_path, "literal.py", "description = '" + "x" * 5000 + "'\n")
    with pytest.raises(ConfigError, match=r"literal.py:1: description = .*a string of 5,000 characters"):
        load_preset(big)
    huge = write(tmp_path, "huge.py", "n_layer = 2\n" + "# padding\n" * 200_000)
    with pytest.raises(ConfigError, match=r"huge.py: larger than 1 MB, which no nanoGPT config is"):
        load_preset(huge)
    rc = cli_main(["plan", "--preset", str(path)])  # the same through the CLI: exit 2, one line
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("fwtui: error: ") and err.count("\n") == 1 and "MemoryError" not in err
