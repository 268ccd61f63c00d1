"""HellaSwag: the file (bad lines, the sha256 check, offline), the scoring, `fwtui eval` end to end.

The scoring is checked two ways: on hand-made examples whose answer this file derives from losses it
computes itself with a plain forward, and against an independent implementation (test_nanogpt_compat's
reference forward, one ending at a time, no padding, no hook) on 50 real examples, prediction by prediction.
Nothing here downloads: the downloader is replaced by one that fails or writes known bytes.
"""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from fwtui.cli import main as cli_main
from trainer.config import load_preset
from trainer.data import hellaswag as data
from trainer.data.tokenizer import get_encoding
from trainer.errors import DataError
from trainer.model.gpt import GPT, ModelArgs
from trainer.train.hellaswag import example_batch, score, wilson_interval

from tests.test_nanogpt_compat import reference_logits

SHARED_FILE = Path(__file__).resolve().parents[2] / "shared" / "data" / "hellaswag_val.jsonl"


def made_line(i: int) -> dict:
    """An example in the published format, with endings of different lengths."""
    words = ["runs to the door", "sits down slowly and smiles at the camera while the crowd cheers",
             "jumps", "picks up the ball and throws it far across the field"]
    return {"ind": i, "activity_label": "Test", "ctx_a": f"A person stands in room {i}.", "ctx_b": "the person",
            "ctx": f"A person stands in room {i}. the person", "split": "val", "split_type": "indomain",
            "label": i % 4, "endings": words[i % 4:] + words[:i % 4], "source_id": f"test~{i}"}


def write_file(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def hellaswag_file(tmp_path) -> Path:
    """The real validation file when ../shared has it, else 60 made examples in its format."""
    if SHARED_FILE.is_file():
        return SHARED_FILE
    return write_file(tmp_path / "made.jsonl", [json.dumps(made_line(i)) for i in range(60)])


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """An empty cache in tmp_path, no FWTUI_HELLASWAG_FILE, and a downloader that fails as offline does."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(data.ENV_VAR, raising=False)

    def offline(url, dest, timeout=0):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(data, "fetch_url", offline)


class Bytes:
    """A tokenizer of bytes (ids 0-255), for a model of vocabulary 256."""

    @staticmethod
    def encode_ordinary(text: str) -> list[int]:
        return list(text.encode())


# --- the file ----------------------------------------------------------------------------------------------

def test_a_damaged_line_is_named_by_its_number(tmp_path):
    good = json.dumps(made_line(0))
    path = write_file(tmp_path / "bad.jsonl", [good, good, good[: len(good) // 2], good])
    with pytest.raises(DataError, match=r"bad\.jsonl line 3: not valid JSON .*damaged or truncated") as err:
        data.load(path)
    assert "\n" not in str(err.value) and "--hellaswag-file" in str(err.value)
    wrong = json.dumps({**made_line(1), "endings": ["only", "three", "endings"]})
    with pytest.raises(DataError, match=r"line 2: 'endings' must be a list of 4"):
        data.load(write_file(tmp_path / "three.jsonl", [good, wrong]))
    with pytest.raises(DataError, match=r"line 1: 'label' must be 0, 1, 2 or 3, not 7"):
        data.load(write_file(tmp_path / "label.jsonl", [json.dumps({**made_line(1), "label": 7})]))


def test_a_truncated_last_line_is_refused(tmp_path):
    lines = [json.dumps(made_line(i)) for i in range(5)]
    path = tmp_path / "cut.jsonl"
    path.write_text("\n".join(lines)[:-20], encoding="utf-8")  # the download stopped mid-line
    with pytest.raises(DataError, match="line 5: not valid JSON"):
        data.load(path, limit=2)  # every line is checked, even past the limit


def test_offline_names_both_fixes_and_caches_nothing(no_network, tmp_path):
    with pytest.raises(DataError) as err:
        data.load()
    message = str(err.value)
    assert "cannot download" in message and "--hellaswag-file" in message and data.ENV_VAR in message
    assert str(data.cached_path()) in message  # the second fix: copy the file there
    assert not any(data.cache_dir().iterdir())  # no partial file left behind


def test_a_wrong_download_is_refused_and_nothing_cached(no_network, monkeypatch):
    monkeypatch.setattr(data, "fetch_url", lambda url, dest, timeout=0: dest.write(b'{"ctx": "not it"}\n'))
    with pytest.raises(DataError, match="sha256 .* not the published .*nothing was cached"):
        data.load()
    assert not any(data.cache_dir().iterdir())


def test_a_good_download_is_cached_once_and_checked(no_network, monkeypatch, hellaswag_file):
    body = hellaswag_file.read_bytes()
    if hellaswag_file != SHARED_FILE:  # the made file stands in for the published one
        monkeypatch.setattr(data, "SHA256", data.file_sha256(hellaswag_file))
    calls = []
    monkeypatch.setattr(data, "fetch_url", lambda url, dest, timeout=0: (calls.append(url), dest.write(body)))
    first = data.load(limit=3)
    assert first.published and first.path == data.cached_path() and len(first.examples) == 3
    assert calls == [data.URL] and sorted(p.name for p in data.cache_dir().iterdir()) == [data.FILE_NAME]
    assert data.load().path == data.cached_path() and calls == [data.URL]  # read from the cache, not again
    data.cached_path().write_bytes(body[:-100])  # damaged in the cache: refused, with the way out
    with pytest.raises(DataError, match="wrong sha256.*delete it"):
        data.load()


def test_the_flag_and_the_variable_choose_the_file(no_network, monkeypatch, tmp_path, hellaswag_file):
    assert data.locate(hellaswag_file) == hellaswag_file
    monkeypatch.setenv(data.ENV_VAR, str(hellaswag_file))
    assert data.load(limit=1).path == hellaswag_file
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "absent.jsonl"))
    with pytest.raises(DataError, match=f"{data.ENV_VAR} .*absent.jsonl: no such file"):
        data.load()


# --- the scoring -------------------------------------------------------------------------------------------

def plain_ending_losses(model: GPT, ctx: list[int], ending: list[int]) -> tuple[float, float]:
    """(summed, mean) loss of the ending's tokens with the model's plain forward, one ending alone."""
    row = torch.tensor(ctx + ending)
    targets = row[1:].clone()
    targets[: len(ctx) - 1] = -1  # only the tokens of the ending are scored
    _, mean = model(row[None, :-1], targets[None])
    return mean.item() * len(ending), mean.item()


@pytest.mark.parametrize("recipe", [{}, dict(rotary=True, rms_norm=True, untied_head=True, logit_softcap=15.0)],
                         ids=["nanogpt", "modern"])
def test_scoring_matches_losses_computed_by_hand(recipe):
    """Hand-made examples where acc and acc_norm pick different endings; the answers come from plain losses."""
    args = ModelArgs(n_layer=1, n_head=2, n_embd=32, block_size=64, vocab_size=256, **recipe)
    endings = (" no", " a much longer ending here", " mid length", " xy")
    found = 0
    for seed in range(40):
        torch.manual_seed(seed)
        model = GPT(args).eval()
        with torch.no_grad():  # the modern recipe starts its head and projections at zero: all losses equal
            for p in model.parameters():
                if p.dim() >= 2 and not p.any():
                    p.normal_(0.0, 0.02)
        ctx = list(f"Example {seed}: then".encode())
        with torch.no_grad():
            losses = [plain_ending_losses(model, ctx, list(e.encode())) for e in endings]
        by_sum = min(range(4), key=lambda i: losses[i][0])
        by_mean = min(range(4), key=lambda i: losses[i][1])
        if by_sum == by_mean:
            continue
        found += 1
        example = data.Example(line=1, ctx=f"Example {seed}: then", endings=tuple(e[1:] for e in endings),
                               label=by_mean)
        result = score(model, [example], Bytes(), keep_choices=True)
        assert (result.choices[0].pred, result.choices[0].pred_norm) == (by_sum, by_mean)
        assert (result.count, result.correct, result.correct_norm) == (1, 0, 1)
        assert result.acc == 0.0 and result.acc_norm == 1.0
    assert found >= 3  # enough seeds disagree for the check to mean something


def test_rows_longer_than_block_size_keep_the_ending_whole():
    ctx, endings = list(range(1, 21)), [[30, 31, 32], [40], [50, 51], [60, 61, 62, 63]]
    tokens, targets, mask, cropped = example_batch(ctx, endings, block_size=8)
    assert cropped and tokens.shape == (4, 8) and targets.shape == (4, 8)
    assert targets[3][mask[3]].tolist() == [60, 61, 62, 63] and targets[1][mask[1]].tolist() == [40]
    assert tokens[3].tolist() == [16, 17, 18, 19, 20, 60, 61, 62]  # the context cropped from the left
    _, _, mask, cropped = example_batch([1, 2], endings, block_size=8)
    assert not cropped and mask.sum(dim=1).tolist() == [3, 1, 2, 4]


def test_wilson_interval():
    low, high = wilson_interval(50, 100)
    assert (round(low, 4), round(high, 4)) == (0.4038, 0.5962)  # the textbook value for 50 of 100
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def independent_choice(state: dict, n_head: int, ctx: list[int], endings: list[list[int]]) -> tuple[int, int]:
    """(by summed loss, by mean loss) from nanoGPT's architecture written out (test_nanogpt_compat)."""
    sums, means = [], []
    for ending in endings:
        row = torch.tensor([ctx + ending])
        logp = F.log_softmax(reference_logits(state, row[:, :-1], n_head)[0], dim=-1)  # (T-1, V)
        picked = logp[len(ctx) - 1:].gather(1, row[0, len(ctx):, None])  # the ending's tokens
        sums.append(-picked.sum().item())
        means.append(-picked.mean().item())
    return min(range(4), key=sums.__getitem__), min(range(4), key=means.__getitem__)


def test_predictions_equal_an_independent_implementation_on_50_examples(hellaswag_file):
    torch.manual_seed(0)
    args = ModelArgs(n_layer=2, n_head=2, n_embd=32, block_size=256, vocab_size=50304)
    model = GPT(args)
    with torch.no_grad():  # a random model's losses are nearly equal: spread them so near-ties are rare
        for p in model.parameters():
            if p.dim() >= 2:
                p.mul_(4.0)
    encoding = get_encoding()
    examples = data.load(hellaswag_file, limit=50).examples
    threads = torch.get_num_threads()
    result = score(model, examples, encoding, keep_choices=True)
    assert torch.get_num_threads() == threads  # one thread while scoring on a CPU, then as it was
    state = {k: v.detach() for k, v in model.state_dict().items()}
    torch.set_num_threads(1)  # 200 small forwards: one thread is the fast way on a shared 2-core machine
    try:
        with torch.no_grad():
            expected = [independent_choice(state, args.n_head, *data.tokenize(e, encoding)) for e in examples]
    finally:
        torch.set_num_threads(threads)
    assert [(c.pred, c.pred_norm) for c in result.choices] == expected
    assert result.correct_norm == sum(p_norm == e.label for (_, p_norm), e in zip(expected, examples))
    assert model.training  # the mode it was in is restored


# --- fwtui eval --------------------------------------------------------------------------------------------

def cpu_tiny_checkpoint(path: Path) -> Path:
    config = load_preset("cpu-tiny")
    torch.manual_seed(1)
    model = GPT(ModelArgs.from_dict(config.model_args()))
    torch.save({"model": model.state_dict(), "model_args": config.model_args(), "iter_num": 5,
                "config": config.to_dict()}, path)
    return path


def test_fwtui_eval_limit_50_end_to_end(tmp_path, capsys, hellaswag_file):
    ckpt = cpu_tiny_checkpoint(tmp_path / "ckpt.pt")
    code = cli_main(["eval", str(ckpt), "--limit", "50", "--hellaswag-file", str(hellaswag_file), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    d = json.loads(out)  # stdout is the one JSON object
    assert d["count"] == 50 and d["iter"] == 5 and d["precision"] == "float32"
    assert d["acc_norm"] == d["correct_norm"] / 50 and d["acc"] == d["correct"] / 50
    low, high = d["acc_norm_interval_95"]
    assert low <= d["acc_norm"] <= high and d["interval_method"] == "Wilson score"
    assert d["reference"] == {"gpt2_124m_acc": 0.2859, "gpt2_124m_acc_norm": 0.2955, "chance": 0.25}
    assert d["published_file"] == (hellaswag_file == SHARED_FILE)
    code = cli_main(["eval", str(tmp_path), "--limit", "50", "--hellaswag-file", str(hellaswag_file)])
    out, _ = capsys.readouterr()
    assert code == 0 and "acc_norm" in out and "GPT-2 124M 0.2955" in out and "(Wilson)" not in out
    assert f"{d['correct_norm']} / 50" in out  # the same checkpoint, the same answer


def test_fwtui_eval_errors_are_one_line(tmp_path, capsys, no_network):
    ckpt = cpu_tiny_checkpoint(tmp_path / "ckpt.pt")
    assert cli_main(["eval", str(ckpt), "--limit", "5"]) == 2
    note, err = capsys.readouterr().err.strip().split("\n")  # what it tried, then the one error line
    assert note.startswith("fwtui: downloading") and err.startswith("fwtui: error: cannot download")
    assert cli_main(["eval", str(ckpt), "--limit", "0"]) == 2
    assert "--limit 0: must be 1 or more" in capsys.readouterr().err


# --- in the run --------------------------------------------------------------------------------------------

def run_config(**changes):
    from tests.tiny_trainer_child import tiny

    # GPT-2's vocabulary (HellaSwag is in GPT-2 tokens); the training data's ids are below 256.
    return tiny(vocab_size=50304, max_iters=8, eval_interval=100, hellaswag_limit=10, **changes)


def test_the_run_scores_every_interval_and_when_asked(pattern_data, tmp_path, monkeypatch, hellaswag_file):
    from trainer.observe import events as ev
    from trainer.train.controls import Controls

    from tests.engine_helpers import train

    monkeypatch.setenv(data.ENV_VAR, str(hellaswag_file))
    controls = Controls()
    on_step = lambda step: controls.request_hellaswag() if step.iter == 0 else None  # noqa: E731 - the h key
    rec, trainer, reason = train(pattern_data, tmp_path / "on", run_config(hellaswag_interval=3),
                                 controls=controls, on_step=on_step)
    scored = rec.of(ev.HellaSwag)
    assert reason == "completed" and [e.iter for e in scored] == [1, 3, 6, 8]  # asked at 1, every 3, the end
    assert all(e.count == 10 and 0 <= e.acc_norm <= 1 and e.seconds > 0 for e in scored)
    assert [trainer.eta.hellaswag_to_come(8 - it - 1) for it in (1, 6)] == [3, 1]  # (3, 6, 8), then (8)
    assert len(trainer.eta._hellaswag) == 4  # each scoring measured for the ETA
    quiet, _, _ = train(pattern_data, tmp_path / "off", run_config())  # interval 0, never asked
    assert not quiet.of(ev.HellaSwag)
    # Scoring draws no random numbers and reads no training batch: the losses are the same bit for bit.
    assert [s.loss for s in rec.of(ev.Step)] == [s.loss for s in quiet.of(ev.Step)]


def test_runs_and_view_summary_show_the_last_value(pattern_data, tmp_path, monkeypatch, hellaswag_file, capsys):
    from trainer.observe import events as ev
    from trainer.observe.runlog import EventLogWriter
    from trainer.runs.listing import read_run

    from tests.engine_helpers import train

    monkeypatch.setenv(data.ENV_VAR, str(hellaswag_file))
    rec, _, _ = train(pattern_data, tmp_path / "run", run_config(hellaswag_interval=4))
    writer = EventLogWriter(tmp_path / "run")
    for event in rec.events:
        writer(event)
    writer.close()
    last = rec.of(ev.HellaSwag)[-1]
    assert last.iter == 8 and read_run(tmp_path / "run").hellaswag == last
    monkeypatch.setenv("COLUMNS", "250")  # every column, the tmp path included
    assert cli_main(["runs", str(tmp_path)]) == 0
    assert f"{last.acc_norm:.4f} (10)" in capsys.readouterr().out
    assert cli_main(["view", str(tmp_path / "run" / "events.jsonl"), "--summary"]) == 0
    assert f"acc_norm {last.acc_norm:.4f} at iter 8 (10 examples" in capsys.readouterr().out


def test_a_run_without_the_file_warns_once_and_trains_on(pattern_data, tmp_path, no_network):
    from trainer.observe import events as ev

    from tests.engine_helpers import train

    rec, _, reason = train(pattern_data, tmp_path / "run", run_config(hellaswag_interval=2))
    warnings = [w.message for w in rec.of(ev.Warning) if "HellaSwag" in w.message]
    assert reason == "completed" and not rec.of(ev.HellaSwag)
    assert len(warnings) == 1 and "not again every 2 iterations" in warnings[0] and "--hellaswag-file" in warnings[0]


def test_a_model_too_small_for_gpt2_tokens_is_refused_in_one_line():
    model = GPT(ModelArgs(n_layer=1, n_head=2, n_embd=32, block_size=64, vocab_size=256))
    example = data.Example(line=1, ctx="A man", endings=("runs.", "sits.", "eats.", "sleeps."), label=0)
    with pytest.raises(Exception, match="beyond the model's vocab_size 256"):
        score(model, [example], get_encoding())


# --- the dashboard -----------------------------------------------------------------------------------------

async def test_the_dashboard_charts_acc_norm_and_h_asks_for_a_scoring():
    from trainer.observe.events import HellaSwag

    from tests.dashboard_app import DashApp, FakeControls, log_text
    from tests.dashboard_script import T0, scripted_run

    class Controls(FakeControls):
        def request_hellaswag(self) -> None:
            self.calls.append(("hellaswag",))

    controls = Controls()
    app = DashApp(controls)
    async with app.run_test(size=(120, 40)) as pilot:
        for event in scripted_run(1240):
            app.dash.feed(event)
        app.dash.redraw_now()
        await pilot.pause()
        chart = app.dash.query_one("#hellaswag-chart")
        assert not chart.display  # no scoring yet: the dashboard looks as it always did
        await pilot.press("h")
        assert controls.calls == [("hellaswag",)]
        for it, value in ((500, 0.2641), (1000, 0.2712)):
            app.dash.feed(HellaSwag(time=T0 + it, iter=it, acc=0.27, acc_norm=value, count=2000, seconds=8.5))
        app.dash.redraw_now()
        await pilot.pause()
        assert chart.display and chart.border_title == "HellaSwag acc_norm by iter · last 0.2712"
        picture = str(chart.render())
        assert picture.count("o") >= 2 and "GPT-2 124M" in picture and "chance" in picture
        assert "iter 1,000 HellaSwag: acc_norm 0.2712 · acc 0.2700 (2,000 examples" in log_text(app.dash)


def test_the_headless_printer_prints_a_scoring():
    import io

    from fwtui.headless import HeadlessPrinter
    from trainer.observe.events import HellaSwag
    out = io.StringIO()
    HeadlessPrinter(out)(HellaSwag(iter=2500, acc=0.281, acc_norm=0.2934, count=2000, seconds=7.25))
    assert out.getvalue() == ("hellaswag 2,500: acc_norm 0.2934 · acc 0.2810 (2,000 examples; GPT-2 124M 0.2955, "
                              "chance 0.25) · training paused 7.25 s\n")


def test_h_reaches_a_trainer_in_another_process_through_the_control_channel(tmp_path):
    import time

    from trainer.runs.control_channel import ControlChannelServer, ControlClient
    from trainer.train.controls import Controls
    controls = Controls()
    server = ControlChannelServer(tmp_path, controls).start()
    try:
        ControlClient(tmp_path).request_hellaswag()  # what `h` does in `fwtui attach`
        deadline = time.monotonic() + 10  # the server polls every 0.2 s: a deadline, not a timing assertion
        while server.applied < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert controls.take().hellaswag and not controls.take().hellaswag  # taken once, then cleared
    finally:
        server.stop()
