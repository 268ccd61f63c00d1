"""The setup screen's background work: one token count per data path, and the list of runs to continue.

Token counts run the real counter, slowed and counted; the runs are real cpu-tiny runs on the pattern data.
"""

from __future__ import annotations

import time
from pathlib import Path

from fwtui.app import AppOptions, FwtuiApp
from fwtui.screens.setup import SetupScreen
from tests.conftest import synthetic_texts, write_fineweb_parquet
from tests.setup_helpers import RecordingApp, make_app, settle, stopped_run


class SlowCounter:
    """trainer.data.token_count.count_tokens made slow (0.6 s a call) and counted, so highlights overlap a count."""

    def __init__(self) -> None:
        import threading

        from trainer.data.token_count import count_tokens

        self.real = count_tokens
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, paths, *args, **kwargs):
        with self.lock:
            self.calls.extend(str(p) for p in paths)
        time.sleep(0.6)
        return self.real(paths, *args, **kwargs)


async def test_one_token_count_per_path_serves_every_preset(home: Path, monkeypatch) -> None:
    import trainer.data.token_count

    counter = SlowCounter()
    monkeypatch.setattr(trainer.data.token_count, "count_tokens", counter)
    first = write_fineweb_parquet(home / "first.parquet", synthetic_texts(20))
    second = write_fineweb_parquet(home / "second.parquet", synthetic_texts(30, seed=1))
    app = make_app(home, data=str(first))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        panel = screen.query_one("#plan")
        screen.query_one("#presets").focus_list()
        await pilot.press("down", "down", "down", "down")  # four highlights while the first count runs
        await settle(pilot, lambda: panel.plan is not None and panel.plan.dataset_tokens is not None
                     and screen.base.name in panel.border_title)
        # one count, shared by the five presets' plans (and the shard list, which counts the folder's files)
        assert counter.calls.count(str(first)) == 1
        tokens = panel.plan.dataset_tokens
        await pilot.press("up", "up")  # more presets, same path: the kept result, no new count
        await settle(pilot, lambda: screen.base.name in panel.border_title and panel.plan is not None)
        assert counter.calls.count(str(first)) == 1 and panel.plan.dataset_tokens == tokens
        # Another path: its own count, once; back to the first path: the kept result.
        screen.query_one("#picker").set_path(str(second))
        await settle(pilot, lambda: screen.data == str(second) and panel.plan is not None
                     and panel.plan.dataset_tokens not in (None, tokens))
        await pilot.press("down")
        screen.query_one("#picker").set_path(str(first))
        await settle(pilot, lambda: screen.data == str(first) and panel.plan is not None
                     and panel.plan.dataset_tokens == tokens and screen.base.name in panel.border_title)
        assert sorted(counter.calls) == [str(first), str(second)]  # each file counted once


def test_token_counts_count_a_path_once_however_many_ask_at_once(tmp_path: Path) -> None:
    import threading

    from fwtui.screens.token_counts import TokenCounts

    calls: list[str] = []
    release = threading.Event()

    def counter(path: str, text_column: str) -> int:
        calls.append(path)
        release.wait(10)
        return 42

    data = tmp_path / "a.parquet"
    data.write_bytes(b"x")
    counts = TokenCounts(counter)
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(counts.get(str(data)))) for _ in range(4)]
    for thread in threads:
        thread.start()
    while not calls:
        time.sleep(0.01)
    cancelled = counts.get(str(data), cancelled=lambda: True)  # a superseded plan stops waiting
    release.set()
    for thread in threads:
        thread.join(10)
    assert cancelled is None
    assert calls == [str(data)] and results == [42] * 4
    data.write_bytes(b"xy")  # the file changed on disk: another identity, counted again
    assert counts.get(str(data)) == 42 and len(calls) == 2
    broken = TokenCounts(lambda path, column: (_ for _ in ()).throw(ValueError("not a parquet file")))
    assert broken.get(str(data)) == "not a parquet file"


# --- continuing a run ------------------------------------------------------------------------------------

class ResumeRecordingApp(RecordingApp):
    """RecordingApp that also writes down a request to continue a run."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.resumed = None

    def on_setup_screen_resume_requested(self, event: SetupScreen.ResumeRequested) -> None:
        event.prevent_default()
        self.resumed = event.run_dir


def run_rows(screen) -> list[str]:
    runs = screen.query_one("#runs")
    return [str(runs.get_option_at_index(i).prompt) for i in range(runs.option_count)]


async def test_a_stopped_run_is_listed_and_enter_continues_it_from_its_checkpoint(home: Path,
                                                                                   pattern_data) -> None:
    from trainer.train.checkpoint import load_checkpoint

    run_dir = stopped_run(home / "runs" / "tiny-run", pattern_data.dir)
    resumed_at = load_checkpoint(run_dir)["iter_num"]
    app = FwtuiApp(AppOptions(), gpu_probe=lambda: [], root=home, runs_dir=home / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await settle(pilot, lambda: screen.query_one("#runs").display)
        rows = run_rows(screen)
        assert len(rows) == 1 and "tiny-run" in rows[0], rows
        assert f"stopped at iter {resumed_at} of 40" in rows[0] and "val " in rows[0] and "ago" in rows[0]
        await pilot.press("r")  # to the list
        assert app.focused is screen.query_one("#runs")
        await pilot.press("enter")  # continue the highlighted run
        await settle(pilot, lambda: app.dashboard is not None and app.screen is app.dashboard)
        dashboard = app.dashboard
        await settle(pilot, lambda: dashboard.error_message is not None or (
            dashboard.run is not None and dashboard.run.start_iter > 0 and dashboard.last_step is not None), limit=90)
        assert dashboard.error_message is None, dashboard.error_message
        assert dashboard.run.start_iter == resumed_at
        iters = [it for it, _ in dashboard.train_loss.points]  # the run's history first (issue 20 §2.4), then on
        assert iters[0] == 0 and resumed_at in iters, iters[:8]
        assert "tiny-run" in dashboard.run_title
        app.stop_run("test")
        await settle(pilot, lambda: dashboard.run_over, limit=90)
    assert app.session.done.wait(30) and app.session.args.resume


async def test_runs_running_elsewhere_or_damaged_are_shown_but_not_continued(home: Path, pattern_data) -> None:
    import shutil

    from trainer.observe.events import Finished
    from trainer.runs.listing import RunLock

    good = stopped_run(home / "runs" / "a-good", pattern_data.dir)
    busy, broken, done = home / "runs" / "b-busy", home / "runs" / "c-broken", home / "runs" / "d-done"
    for copy in (busy, broken, done):
        shutil.copytree(good, copy)
    (broken / "ckpt.pt").write_bytes((good / "ckpt.pt").read_bytes()[:5000])  # cut short
    with open(done / "events.jsonl", "a", encoding="utf-8") as log:  # as if it had run to the end
        log.write(Finished(time=time.time(), iter=40, reason="completed", seconds=1.0).to_json() + "\n")
    with RunLock(busy):  # a trainer in another process holds the lock
        app = ResumeRecordingApp(AppOptions(), gpu_probe=lambda: [], root=home, runs_dir=home / "runs")
        async with app.run_test(size=(160, 40)) as pilot:
            screen = app.screen
            await settle(pilot, lambda: screen.query_one("#runs").display)
            runs = screen.query_one("#runs")
            rows = dict(zip((c.name for c in runs.choices), run_rows(screen)))
            assert set(rows) == {"a-good", "b-busy", "c-broken"}, rows  # a finished run has nothing to continue
            assert "running elsewhere" in rows["b-busy"] and f"fwtui attach {busy}" in rows["b-busy"]
            assert "damaged checkpoint: ckpt.pt" in rows["c-broken"]
            runs.focus()
            names = [c.name for c in runs.choices]
            for name in ("b-busy", "c-broken"):
                runs.highlighted = names.index(name)
                await pilot.press("enter")
                await pilot.pause()
                assert app.resumed is None
            runs.highlighted = names.index("a-good")
            await pilot.press("r")  # `r` on the list continues the highlighted run, as Enter does
            await settle(pilot, lambda: app.resumed is not None)
            assert app.resumed == good
