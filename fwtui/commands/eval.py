"""`fwtui eval RUN|CKPT [--hellaswag] [--limit N] [--data DIR] [--json]`: HellaSwag accuracy of a checkpoint,
and its train and val loss in nats/token and bits per UTF-8 byte.

The losses are the trainer's own evaluation (trainer.train.evaluator: the same fixed windows a run's Eval
events cover, bits per byte exact from the tokenizer's byte lengths) over the prepared data in --data, else
the run's (its config.toml's `dataset`); with neither, they are "unknown" and HellaSwag is still scored.

The checkpoint (a run directory, fwtui's or nanoGPT's ckpt.pt) is loaded as `fwtui sample` loads it and
scored in the run's precision on the chosen device (trainer.train.hellaswag). Progress goes to stderr as a
bar; the result to stdout: acc and acc_norm with their count and Wilson 95% interval, GPT-2 124M's figures
and chance beside them, or with `--json` one JSON object and nothing else on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys

from trainer.errors import CheckpointError, ConfigError


def _note(text: str) -> None:
    print(f"fwtui: {text}", file=sys.stderr)


def _precision(ckpt: dict, info) -> str:
    """The run's dtype decided for this device as the trainer decides it (as `fwtui sample` does)."""
    from trainer.model.precision import PRECISIONS, precision_for

    config = ckpt.get("config")
    dtype = config.get("dtype") if isinstance(config, dict) else None
    if dtype not in PRECISIONS or (dtype == "bfloat16" and info.is_cuda and not info.bf16):
        dtype = "auto"
    return precision_for(dtype, info)


def _score_with_bar(model, examples, encoding, device: str, precision: str, quiet: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from trainer.train.hellaswag import score

    with Progress(TextColumn("HellaSwag"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=True, disable=quiet, console=_stderr_console()) as bar:
        task = bar.add_task("score", total=len(examples))
        return score(model, examples, encoding, device=device, precision=precision,
                     on_progress=lambda done, _total: bar.update(task, completed=done))


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def result_dict(result, *, checkpoint: str, iter_num, source, device: str, precision: str) -> dict:
    from trainer.data.hellaswag import CHANCE, GPT2_124M_ACC, GPT2_124M_ACC_NORM

    return {
        "checkpoint": checkpoint, "iter": iter_num, "file": str(source.path), "published_file": source.published,
        "count": result.count, "correct": result.correct, "correct_norm": result.correct_norm,
        "acc": result.acc, "acc_norm": result.acc_norm,
        "acc_interval_95": list(result.acc_interval), "acc_norm_interval_95": list(result.acc_norm_interval),
        "interval_method": "Wilson score", "cropped_to_block_size": result.cropped,
        "seconds": result.seconds, "examples_per_sec": result.examples_per_sec,
        "device": device, "precision": precision,
        "reference": {"gpt2_124m_acc": GPT2_124M_ACC, "gpt2_124m_acc_norm": GPT2_124M_ACC_NORM, "chance": CHANCE},
    }


def data_dir_for(path, given: str | None) -> str | None:
    """The prepared data to evaluate the loss on: --data, else the run's (RUN/config.toml's `dataset`)."""
    if given:
        return given
    from trainer.errors import ConfigError as NoConfig
    from trainer.train.resume import CONFIG_FILE, read_run_config

    if not (path.parent / CONFIG_FILE).is_file():
        return None
    try:
        recorded = read_run_config(path.parent)[1]
    except NoConfig:
        return None
    from pathlib import Path

    return recorded if recorded and Path(recorded).is_dir() else None  # a cleared cache: the loss is unknown


def data_losses(model, ckpt: dict, data_dir: str, device: str, precision: str) -> dict:
    """Train and val loss (nats/token) and bits per byte of `model` over the prepared data's fixed windows
    (the checkpoint's block_size, batch_size and eval_iters, as its run evaluated)."""
    from trainer.data.bpb import token_byte_lengths
    from trainer.data.dataset import open_prepared
    from trainer.model.precision import autocast_for
    from trainer.train.evaluator import Evaluator

    data = open_prepared(data_dir)
    config = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
    evaluator = Evaluator(train_path=data.train_path, val_path=data.val_path, block_size=model.args.block_size,
                          batch_size=int(config.get("batch_size", 8)), eval_iters=int(config.get("eval_iters", 20)),
                          device=device, autocast=autocast_for(precision, device), token_bytes=token_byte_lengths())
    result = evaluator.evaluate(model)
    return {"data": str(data.dir), "train_loss": result.losses["train"], "val_loss": result.losses["val"],
            "train_bpb": result.bpb["train"], "val_bpb": result.bpb["val"], "val_tokens": result.tokens["val"],
            "val_bytes": evaluator.target_bytes["val"]}


def _print_text(d: dict) -> None:
    ref = d["reference"]
    loss = d.get("loss")
    if loss is None:
        print("val loss  unknown (no prepared data for this checkpoint: pass --data DIR, a prepared directory)")
    else:
        print(f"val loss  {loss['val_loss']:.4f} nats/token · {loss['val_bpb']:.4f} bits per byte "
              f"({loss['val_tokens']:,} tokens, {loss['val_bytes']:,} UTF-8 bytes of {loss['data']}); train "
              f"{loss['train_loss']:.4f} · {loss['train_bpb']:.4f} bpb")

    def line(name: str, value: float, interval: list[float], correct: int, gpt2: float) -> str:
        return (f"{name:<9}{value:.4f}  ({correct:,} / {d['count']:,}; 95% {interval[0]:.4f}-{interval[1]:.4f}, "
                f"Wilson)   GPT-2 124M {gpt2:.4f}, chance {ref['chance']:.2f}")

    print(line("acc", d["acc"], d["acc_interval_95"], d["correct"], ref["gpt2_124m_acc"]))
    print(line("acc_norm", d["acc_norm"], d["acc_norm_interval_95"], d["correct_norm"], ref["gpt2_124m_acc_norm"]))
    print(f"{d['count']:,} examples in {d['seconds']:.1f} s ({d['examples_per_sec']:.1f} examples/s) on "
          f"{d['device']} in {d['precision']}" + ("" if d["published_file"] else
                                                  f"; {d['file']} is not the published validation file"))
    if d["cropped_to_block_size"]:
        print(f"{d['cropped_to_block_size']:,} examples were longer than the model's block_size: their "
              f"contexts were cropped from the left")


def main(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit {args.limit}: must be 1 or more, e.g. --limit 500")
    from trainer.data import hellaswag as data
    from trainer.data.tokenizer import get_encoding
    from trainer.model.formulas import format_count
    from trainer.observe.hardware import detect_device
    from trainer.train.from_checkpoint import checkpoint_path, load_model

    path = checkpoint_path(args.run)
    encoding = get_encoding()
    data_dir = data_dir_for(path, args.data)
    if data_dir is not None:
        from trainer.data.dataset import open_prepared

        open_prepared(data_dir)  # a wrong --data is one line now, not after the scoring
    source = data.load(args.hellaswag_file, limit=args.limit, on_note=_note)  # before the model: fail fast
    info = detect_device(args.device)
    model, ckpt = load_model(path, device=info.device, on_warning=lambda t: _note(f"warning: {t}"))
    if model.args.vocab_size < 50257:
        raise CheckpointError(f"{path}: vocab_size {model.args.vocab_size} is smaller than GPT-2's 50257; "
                              f"HellaSwag is scored in GPT-2 BPE tokens only")
    precision = _precision(ckpt, info)
    iter_num = ckpt.get("iter_num")
    _note(f"loaded {path}: iteration {iter_num if iter_num is not None else 'unknown'}, "
          f"{format_count(model.num_params())} parameters, on {info.device} in {precision}; scoring "
          f"{len(source.examples):,} HellaSwag examples from {source.path}")
    result = _score_with_bar(model, source.examples, encoding, info.device, precision, quiet=args.json)
    d = result_dict(result, checkpoint=str(path), iter_num=iter_num, source=source, device=info.device,
                    precision=precision)
    d["loss"] = None if data_dir is None else data_losses(model, ckpt, data_dir, info.device, precision)
    if args.json:
        print(json.dumps(d))
    else:
        _print_text(d)
    return 0
