"""The `fwtui` command: argparse for every face, then one lazily imported module per subcommand.

`fwtui` alone opens the app. Each subcommand's handler lives in `fwtui/commands/<name>.py` as
`main(args) -> int` and is imported only when that subcommand runs, so `fwtui --help` and the app's
first frame never wait for torch. A `FwtuiError` prints as one line (`fwtui: error: ...`) with exit
status 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from fwtui.arg_types import finite_number, whole_number
from trainer.model.sampling_options import MAX_NEW_TOKENS


def _common(parser: argparse.ArgumentParser, top: bool = False) -> None:
    """--debug and --tokenizer-file, before the command word or after it: a command's own copy sets no default,
    so it never hides the one given before the word."""
    default = {} if top else {"default": argparse.SUPPRESS}
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks for errors", **default)
    parser.add_argument("--tokenizer-file", metavar="FILE", **default,
                        help="GPT-2 ranks (r50k_base.tiktoken) to use instead of the copy fwtui ships; "
                             "or set FWTUI_TOKENIZER_FILE")


def _run_options(parser: argparse.ArgumentParser, data_required: bool = False) -> None:
    """What picks a run: preset, data, output, overrides, peak."""
    parser.add_argument("--preset", metavar="NAME|PATH",
                        help="a preset name (`fwtui presets`), a .toml file, or a nanoGPT config .py")
    parser.add_argument("--data", metavar="PATH", required=data_required,
                        help="parquet file(s), a directory or glob (several joined by ':'), a datasets save_to_disk "
                             "folder, or a prepared data directory")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set batch_size=8 (repeatable)")
    parser.add_argument("--text-column", metavar="NAME",
                        help="the parquet column holding the documents (default text; the same as --set "
                             "text_column=NAME)")
    parser.add_argument("--peak-tflops", type=finite_number(above=True), metavar="T",
                        help="the card's peak bf16 TFLOP/s, for MFU on a card not in the table")
    parser.add_argument("--hellaswag-file", metavar="FILE",
                        help="hellaswag_val.jsonl for the run's HellaSwag scoring (hellaswag_interval, the h key); "
                             "or set FWTUI_HELLASWAG_FILE (default: fwtui's cache, downloaded once)")


def _card_options(parser: argparse.ArgumentParser) -> None:
    """Plan for a card other than this machine's (trainer.plan.target)."""
    parser.add_argument("--gpu", metavar="NAME", help='plan for a card of the peak table, e.g. --gpu "RTX 4070"')
    parser.add_argument("--gpu-memory", metavar="SIZE",
                        help="the card's memory (12GB, 11.5GiB): overrides the table's, or with --peak-tflops "
                             "describes a card not in it")


DEMO_HELP = ("use the demo corpus: a FineWeb-schema parquet built once from Python's own docstrings (no "
             "download), kept at ~/.cache/fwtui/data/demo/python-X.Y-stdlib-docstrings.parquet "
             "($FWTUI_CACHE_DIR/demo/ when set)")

COMMON_FLAGS = ("--debug", "--tokenizer-file")
"""The options every command takes: the only ones that may come before the command word."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fwtui",
        description="Pretrain GPT-2-style models on FineWeb parquet shards. With no command, open the app.",
    )
    _common(parser, top=True)
    _run_options(parser)
    parser.add_argument("--out", metavar="RUN", help="run directory (default runs/<preset>-<time>)")
    parser.add_argument("--resume", action="store_true",
                        help="with --out RUN: open the dashboard continuing RUN from its checkpoint")
    parser.add_argument("--start", action="store_true", help="start training at once")
    parser.add_argument("--demo", action="store_true", help=DEMO_HELP)
    parser.add_argument("--tensorboard", metavar="DIR",
                        help="the app's run also writes its scalars for TensorBoard to DIR (needs the tensorboard "
                             "package)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("launch", help="open the app (the console): the same as `fwtui` with no command, and the "
                                  "same options", add_help=False)  # its options are the app's: see parse()

    p = sub.add_parser("presets", help="list the presets with exact parameter counts")
    _common(p)
    p.add_argument("--keys", action="store_true", help="list the config keys a preset may set")
    _card_options(p)
    p.add_argument("--peak-tflops", type=finite_number(above=True), metavar="T", help="with --gpu-memory: the card's bf16 peak")

    p = sub.add_parser("prepare", help="tokenize parquet files into train.bin / val.bin")
    _common(p)
    p.add_argument("paths", nargs="*", metavar="PATH", help="parquet files, directories or globs")
    p.add_argument("--demo", action="store_true", help=DEMO_HELP + " (prints its path; with --count, its size)")
    p.add_argument("--out", metavar="DIR", help="output directory (default: a cache keyed by the inputs)")
    p.add_argument("--count", action="store_true",
                   help="print the token count (exact from FineWeb's token_count, else an estimate)")
    p.add_argument("--text-column", default="text", help="the column holding the documents (default text)")
    p.add_argument("--val-fraction", type=float, default=0.0005,
                   help="share of documents held out for validation (default 0.0005)")
    p.add_argument("--workers", type=whole_number(0, hint="0 uses every core"), default=0, help="encoding threads (default: every core)")

    p = sub.add_parser("fetch", help="download FineWeb shards (or any hub dataset's files) through huggingface_hub")
    _common(p)
    p.add_argument("dataset", metavar="DATASET", help="fineweb, fineweb-edu, or a hub dataset as OWNER/NAME")
    p.add_argument("--subset", metavar="NAME",
                   help="sample-10BT (the default), sample-100BT, a dump such as CC-MAIN-2013-20, or a folder")
    p.add_argument("--shards", type=int, metavar="N", help="the first N files of the subset (default all)")
    p.add_argument("--files", metavar="GLOB", help="files of an OWNER/NAME repository, e.g. 'data/*.parquet'")
    p.add_argument("--list", action="store_true",
                   help="show the files, sizes and tokens without downloading (no --subset: the subsets)")
    p.add_argument("--dir", metavar="DIR", help="download into DIR (default: the hub's cache, HF_HOME/hub)")
    p.add_argument("--revision", default="main", help="branch, tag or commit of the repository (default main)")

    p = sub.add_parser("train", help="train headless, printing a line per log interval")
    _common(p)
    _run_options(p, data_required=False)
    p.add_argument("--out", metavar="RUN", help="run directory (default runs/<preset>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the run directory from its checkpoint")
    p.add_argument("--demo", action="store_true", help=DEMO_HELP + "; the preset defaults to cpu-tiny")
    p.add_argument("--auto-batch", action="store_true",
                   help="on out-of-memory, halve the micro-batch and double gradient accumulation")
    p.add_argument("--tensorboard", metavar="DIR",
                   help="also write the run's scalars for TensorBoard to DIR (needs the tensorboard package)")
    p.add_argument("--gpus", metavar="N|all",
                   help="train on N GPUs of this machine (or all) through torchrun and DDP")
    p.add_argument("--nproc-cpu", type=int, metavar="N",
                   help="train in N CPU processes (gloo) through torchrun: for testing the several-GPU path")
    p.add_argument("--seeds", metavar="S,S,...",
                   help="train once per seed (e.g. 1337,7,42) into sibling runs RUN-seedS: one after another, or "
                        "one per GPU when several are visible and --gpus is not given; then `fwtui compare`")

    p = sub.add_parser("sample", help="generate text from a run's checkpoint or a nanoGPT ckpt.pt")
    _common(p)
    p.add_argument("run", metavar="RUN|CKPT", help="a run directory or a ckpt.pt file")
    p.add_argument("--prompt", default="\n",
                   help="text to continue, or FILE:path to read it from a file (default: a newline, the start of "
                        "a text)")
    p.add_argument("--max-new-tokens", type=whole_number(1, MAX_NEW_TOKENS, "ask for --num-samples instead"),
                   default=200, metavar="N",
                   help="tokens to generate per sample (default %(default)s)")
    p.add_argument("--temperature", type=finite_number(hint="0 is greedy, 0.8 usual"), default=0.8, metavar="T",
                   help="0 picks the likeliest token each time; higher is more varied (default %(default)s)")
    p.add_argument("--top-k", type=whole_number(0, hint="0 samples from the whole vocabulary"), default=200, metavar="K",
                   help="sample among the K likeliest tokens only (default %(default)s)")
    p.add_argument("--num-samples", type=whole_number(1, 1000), default=1, metavar="N", help="samples to print (default %(default)s)")
    p.add_argument("--seed", type=whole_number(0, 2**63 - 1), default=1337,
                   help="random seed; sample i uses seed + i, so each is reproducible (default %(default)s)")
    p.add_argument("--device", default="auto",
                   help="cuda, cuda:N, cpu or mps (default %(default)s: the first CUDA GPU, else the CPU)")

    p = sub.add_parser("eval", help="HellaSwag accuracy of a run's checkpoint or a nanoGPT ckpt.pt")
    _common(p)
    p.add_argument("run", metavar="RUN|CKPT", help="a run directory or a ckpt.pt file")
    p.add_argument("--hellaswag", action="store_true", default=True,
                   help="score HellaSwag's validation set (the one benchmark so far: on by default)")
    p.add_argument("--limit", type=int, metavar="N", help="score the first N examples only (of 10,042)")
    p.add_argument("--hellaswag-file", metavar="FILE",
                   help="hellaswag_val.jsonl to read; or set FWTUI_HELLASWAG_FILE (default: fwtui's cache, "
                        "downloaded once from the authors' address and checked by sha256)")
    p.add_argument("--data", metavar="DIR",
                   help="a prepared data directory for the train/val loss and bits per byte (default: the run's)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--device", default="auto",
                   help="cuda, cuda:N, cpu or mps (default %(default)s: the first CUDA GPU, else the CPU)")

    p = sub.add_parser("plan", help="parameters, tokens, epochs, FLOPs, time and memory before a run")
    _common(p)
    _run_options(p)
    p.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    p.add_argument("--probe", action="store_true",
                   help="find the largest micro-batch that fits by real steps on the GPU")
    p.add_argument("--measure-peak", action="store_true", help="measure the card's bf16 matmul peak")
    p.add_argument("--price-kwh", type=finite_number(), metavar="PRICE", help="electricity price per kWh for a cost")
    p.add_argument("--save-preset", metavar="NAME", help="with --probe, save the fitted config as a user preset")
    _card_options(p)
    p.add_argument("--gpus", type=int, metavar="N",
                   help="plan for N such GPUs under DDP: memory per GPU, time for all (scaling assumed)")

    p = sub.add_parser("runs", help="list run directories and their state")
    _common(p)
    p.add_argument("dir", nargs="?", default="runs", help="where runs live (default ./runs)")

    p = sub.add_parser("attach", help="open the dashboard of a run started elsewhere (live or finished)")
    _common(p)
    p.add_argument("run", metavar="RUN")

    p = sub.add_parser("serve", help="the attach view in a browser (textual-serve)")
    _common(p)
    p.add_argument("run", metavar="RUN")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=whole_number(0, 65535), default=8000)

    p = sub.add_parser("compare", help="overlay the loss curves of several runs (keys: x axis, l log y, m EMA, "
                                       "r references, t seed table)")
    _common(p)
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="run directories, events.jsonl files, nanoGPT logs, or a directory of runs")
    p.add_argument("--summary", action="store_true",
                   help="print the runs grouped by config less the seed: mean ± sd, Welch's t-test between groups")

    p = sub.add_parser("report", help="write report.md and loss.png of a run (or a nanoGPT log) to share")
    _common(p)
    p.add_argument("run", metavar="RUN", nargs="+",
                   help="a run directory, its events.jsonl, or a nanoGPT stdout log; several runs (or a directory "
                        "of runs): one report comparing them, seed groups and Welch's t-test")
    p.add_argument("--out", metavar="DIR", help="where to write (default the run directory, LOG-report/, or "
                                                "compare-report/ beside several runs)")

    p = sub.add_parser("view", help="open a nanoGPT stdout log or an events.jsonl in the dashboard")
    _common(p)
    p.add_argument("log", metavar="LOG")
    p.add_argument("--summary", action="store_true", help="print a summary instead of opening the app")
    p.add_argument("--gpu", metavar="NAME", help="rescale nanoGPT's A100-based MFU to this card's real peak")
    return parser


def _before_command(argv: list[str], command: str) -> list[str]:
    """The options given before the command word (`fwtui --demo train`): the app's, which the command's own
    options would silently replace or drop."""
    head = argv[:argv.index(command)] if command in argv else []
    return [a.split("=", 1)[0] for a in head if a.startswith("-") and a.split("=", 1)[0] not in COMMON_FLAGS]


def parse(argv: list[str]) -> argparse.Namespace:
    """The command line, parsed: `launch` is the app's own line with the word taken out; an app option put
    before another command's word is one line saying where it goes."""
    parser = build_parser()
    if parser.parse_known_args(argv)[0].command == "launch":
        at = argv.index("launch")
        args = parser.parse_args(argv[:at] + argv[at + 1:])
        if args.command is not None:  # `fwtui launch train ...`: two commands
            parser.error(f"launch opens the app; drop it to run `fwtui {args.command} ...`")
        return args
    args = parser.parse_args(argv)
    misplaced = _before_command(argv, args.command) if args.command else []
    if misplaced:
        parser.error(f"{', '.join(misplaced)} before `{args.command}` would be ignored: put options after the "
                     f"command (`fwtui {args.command} {misplaced[0]} ...`; `fwtui {args.command} --help` lists "
                     "them)")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(argv) if argv is not None else sys.argv[1:]
    args = parse(argv)
    args.argv = argv  # `train --gpus N` hands it on to torchrun
    if getattr(args, "text_column", None) and args.command != "prepare":  # prepare takes the name itself
        args.overrides = [*args.overrides, f"text_column={args.text_column}"]
    if getattr(args, "tokenizer_file", None):
        os.environ["FWTUI_TOKENIZER_FILE"] = args.tokenizer_file
    if getattr(args, "hellaswag_file", None):  # the trainer (and torchrun's ranks) read it from there
        os.environ["FWTUI_HELLASWAG_FILE"] = args.hellaswag_file
    module = f"fwtui.commands.{args.command}" if args.command else "fwtui.commands.app"
    try:
        handler = importlib.import_module(module).main
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        print("fwtui: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the one place errors become a line for the user
        from trainer.data.dataset import cache_root
        from trainer.errors import FwtuiError, as_user_error

        err = as_user_error(err, str(cache_root()))  # a folder that refused: its path, the cause and the fix
        if args.debug:
            traceback.print_exc()
        elif isinstance(err, FwtuiError):
            print(f"fwtui: error: {err}", file=sys.stderr)
        else:
            print(f"fwtui: internal error: {type(err).__name__}: {err} (run again with --debug for details)",
                  file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
