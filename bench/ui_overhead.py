"""What the app costs a run: cpu-tiny tokens/s with and without the app watching, within one training run.

One run of trainer.runs.launch.run_training trains on a thread of its own (like the app's engine worker) for the
whole bench. Its time is cut into phases of --phase-seconds: in "headless" phases nothing watches it; in
"app" phases the real app (fwtui.app.FwtuiApp under Textual's headless driver at 120x40: it lays out and
renders every frame, without a terminal to write to) shows the run on its real dashboard, first replaying
what the run said so far, as `fwtui attach` would, then fed every event live through the app's mailbox
(fwtui.mailbox), as a run the app started is.
Phases alternate headless, app, headless, ..., headless; each app phase is compared with the mean of the
headless phases on either side of it, which cancels drift slower than a phase. The first --margin seconds
of every phase are not counted (the app's start and replay, and the same span in headless phases).

Why within one run: on a shared 2-core machine separate runs of the same config differ by up to 10% in
tokens/s (thread placement, the host's load), more than the 2% to be shown; 5-second windows of one run
differ by about 1.5%. `--aa` makes every phase headless: the spread it reports is the noise floor.

Tokens/s of a phase: tokens between the first and the last Step inside its counted window over the time
between them (Step.time and Step.tokens_seen). The UI thread's CPU time (time.thread_time on the app's
event loop) over the same window says how much the app itself works.

    python bench/ui_overhead.py [--pairs 8] [--phase-seconds 24] [--margin 4] [--aa] [--set batch_size=2 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class Recorder:
    """The run's event sink: keeps every event and, while the app watches, leaves it in the app's mailbox
    (fwtui.mailbox, as the app's own engine session does)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list = []
        self.mailbox = None
        self.error: BaseException | None = None

    def __call__(self, event) -> None:  # on the engine thread
        with self.lock:
            self.events.append(event)
            mailbox = self.mailbox
        if mailbox is not None:
            mailbox.put(event)

    def attach(self, mailbox) -> list:
        """From now on events go to `mailbox`; returns those said before, for the app to replay."""
        with self.lock:
            self.mailbox = mailbox
            return list(self.events)

    def detach(self) -> None:
        with self.lock:
            self.mailbox = None

    def steps(self) -> list:
        from trainer.observe.events import Step

        with self.lock:
            return [e for e in self.events if isinstance(e, Step)]


REDRAWS: list[tuple[float, float]] = []
"""The dashboard's steady redraw intervals in seconds (numbers, charts: fwtui.refresh_budget, within the
ceilings of its mode) at the end of each app phase."""


def watch(recorder: Recorder, controls, seconds: float, margin: float) -> tuple[float, float, float]:
    """The app shows the run for `seconds`; (counted window start, end, UI thread CPU share in it)."""
    from fwtui.app import AppOptions, FwtuiApp
    from fwtui.mailbox import COLLECT_SECONDS
    from fwtui.screens.dashboard import CHART_STEADY_SECONDS, PANEL_REFRESH_SECONDS, DashboardScreen
    from fwtui.session import EngineSession, RunArgs

    window: list[float] = []

    async def drive() -> None:
        start = time.time()
        app = FwtuiApp(AppOptions(), gpu_probe=lambda: [])
        async with app.run_test(size=(120, 40)):
            dashboard = DashboardScreen(controls, title="ui_overhead bench")
            await app.push_screen(dashboard)
            # What FwtuiApp.on_setup_screen_start_requested sets up, with the bench's run in place of the
            # session's worker: the session's mailbox, which the app collects (on EventsWaiting, on a timer).
            app.dashboard = dashboard
            app.session = EngineSession(app, RunArgs(preset="cpu-tiny", data=""), controls)
            app.set_interval(COLLECT_SECONDS, app.collect_events)
            for event in recorder.attach(app.session.mailbox):
                dashboard.feed(event)
            dashboard.redraw_now()
            await asyncio.sleep(max(0.0, start + margin - time.time()))
            cpu0, t0 = time.thread_time(), time.time()
            await asyncio.sleep(max(0.0, start + seconds - time.time()))
            cpu1, t1 = time.thread_time(), time.time()
            recorder.detach()
            window.extend([t0, t1, (cpu1 - cpu0) / (t1 - t0)])
            budget = dashboard.refresh_budget
            REDRAWS.append((budget.numbers(PANEL_REFRESH_SECONDS), budget.charts(CHART_STEADY_SECONDS)))

    asyncio.run(drive())
    return window[0], window[1], window[2]


def idle(seconds: float, margin: float) -> tuple[float, float, None]:
    """Nothing watches the run for `seconds`; (counted window start, end, None)."""
    start = time.time()
    time.sleep(margin)
    t0 = time.time()
    time.sleep(max(0.0, start + seconds - time.time()))
    return t0, time.time(), None


def throughput(steps: list, t0: float, t1: float) -> float:
    """Tokens/s between the first and the last Step timed inside [t0, t1]."""
    inside = [s for s in steps if t0 <= s.time <= t1]
    if len(inside) < 3:
        raise SystemExit(f"only {len(inside)} Steps in a {t1 - t0:.0f} s window: lengthen --phase-seconds "
                         "or log more often (--set log_interval=1)")
    first, last = inside[0], inside[-1]
    return (last.tokens_seen - first.tokens_seen) / (last.time - first.time)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8, help="app phases, each between two headless ones")
    parser.add_argument("--phase-seconds", type=float, default=24.0, help="length of a phase (default 24): "
                        "long enough for the dashboard's redraw budget to settle, as it does over a run")
    parser.add_argument("--margin", type=float, default=4.0, help="seconds not counted at a phase's start")
    parser.add_argument("--aa", action="store_true", help="no app in any phase: the noise floor")
    parser.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                        help="more overrides for the run, e.g. --set batch_size=2 --set block_size=64")
    args = parser.parse_args()

    from tests.conftest import synthetic_texts, write_fineweb_parquet
    from trainer.train.controls import Controls
    from trainer.runs.launch import RunRequest, run_training

    # One Step every iteration (cpu-tiny logs every 10th): more events for the app than the preset's own
    # setting, and enough Steps in every window. No evaluation after iteration 0; the bench stops the run.
    overrides = ["max_iters=1000000", "eval_interval=1000000", "log_interval=1", "val_fraction=0.02",
                 *args.extra]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["XDG_CACHE_HOME"] = str(work / "cache")
        os.environ["XDG_STATE_HOME"] = str(work / "state")
        data = write_fineweb_parquet(work / "bench.parquet", synthetic_texts(1000), row_group_size=100)
        recorder, controls = Recorder(), Controls()
        request = RunRequest(preset="cpu-tiny", data=str(data), out=work / "run", overrides=overrides)

        def train() -> None:
            try:
                run_training(request, recorder, controls)
            except BaseException as err:  # noqa: BLE001 - reported by the main thread
                recorder.error = err

        engine = threading.Thread(target=train, name="engine")
        engine.start()
        while len(recorder.steps()) < 5 and engine.is_alive():  # past tokenizing, the first eval, warm-up
            time.sleep(0.2)
        kind = "headless" if args.aa else "app"
        print(f"cpu-tiny, {' '.join('--set ' + o for o in overrides)}; {args.pairs} {kind} phases between "
              f"{args.pairs + 1} headless ones, {args.phase_seconds:g} s each ({args.margin:g} s not counted)")
        headless, watched, shares = [], [], []
        try:
            headless.append(idle(args.phase_seconds, args.margin))
            for _ in range(args.pairs):
                watched.append(idle(args.phase_seconds, args.margin) if args.aa
                               else watch(recorder, controls, args.phase_seconds, args.margin))
                headless.append(idle(args.phase_seconds, args.margin))
                if not engine.is_alive():
                    break
        finally:
            controls.stop("bench over")
            engine.join()
        if recorder.error is not None:
            raise SystemExit(f"the run failed: {recorder.error}")

    steps = recorder.steps()
    ratios = []
    for i, (t0, t1, share) in enumerate(watched):
        before, after = (throughput(steps, *headless[j][:2]) for j in (i, i + 1))
        rate = throughput(steps, t0, t1)
        ratios.append(rate / ((before + after) / 2))
        if share is not None:
            shares.append(share)
        share_text = "" if share is None else (f" · UI thread {100 * share:.1f}% of a core, numbers every "
                                               f"{REDRAWS[i][0]:g} s, charts every {REDRAWS[i][1]:g} s")
        print(f"  phase {i + 1}: headless {before:,.0f} | {kind} {rate:,.0f} | headless {after:,.0f} tokens/s · "
              f"ratio {ratios[-1]:.3f}{share_text}", flush=True)
    ratio = statistics.median(ratios)
    low, high = (statistics.quantiles(ratios, n=4)[k] for k in (0, 2)) if len(ratios) > 1 else (ratio, ratio)
    print(f"{kind}/headless tokens/s: median {ratio:.3f} over {len(ratios)} phases (quartiles {low:.3f} to "
          f"{high:.3f}): {'the noise floor is' if args.aa else 'the app costs the run'} {100 * (1 - ratio):.1f}%"
          f"{'' if args.aa else '; goal: 2% or less'}")
    if shares:
        print(f"UI thread CPU: median {100 * statistics.median(shares):.2f}% of one core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
