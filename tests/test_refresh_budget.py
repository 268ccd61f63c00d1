"""The UI's CPU budget (fwtui.refresh_budget): steady redraws slow down when the UI thread works too much,
never past the ceilings of the run's mode (numbers 2 s always; charts 2 s, or 10 s for a CPU run in-process)."""

import pytest

from fwtui.refresh_budget import RefreshBudget, ceilings_for


class FakeClocks:
    """A UI thread that spends `share` CPU seconds per wall second."""

    def __init__(self) -> None:
        self.cpu = self.wall = 0.0

    def run(self, seconds: float, share: float) -> None:
        self.wall += seconds
        self.cpu += seconds * share


def budget_with(clocks: FakeClocks, ceilings=None) -> RefreshBudget:
    return RefreshBudget(0.01, ceilings=ceilings, window=5.0, max_stretch=8, cpu_clock=lambda: clocks.cpu,
                         wall_clock=lambda: clocks.wall)


def test_no_judgement_before_a_whole_window():
    clocks = FakeClocks()
    budget = budget_with(clocks)
    clocks.run(4.9, 0.5)  # a burst far over budget, but the window is not over
    budget.tick()
    assert budget.stretch == 1 and budget.last_share is None
    assert budget.numbers(1.0) == 1.0 and budget.charts(2.0) == 2.0


def test_over_budget_doubles_up_to_the_cap():
    clocks = FakeClocks()
    budget = budget_with(clocks, ceilings_for(device="cpu", in_process=True))
    stretches = []
    for _ in range(5):
        clocks.run(5.0, 0.03)
        budget.tick()
        stretches.append(budget.stretch)
    assert stretches == [2, 4, 8, 8, 8]
    assert abs(budget.last_share - 0.03) < 1e-9
    assert budget.charts(2.0) == 10.0  # 2 s x 8 would be 16 s: a CPU run's charts stop at 10 s
    assert budget.numbers(1.0) == 2.0  # 1 s x 8 would be 8 s: numbers stop at 2 s


def test_under_half_the_budget_shrinks_back_to_base():
    clocks = FakeClocks()
    budget = budget_with(clocks)
    for _ in range(3):
        clocks.run(5.0, 0.05)
        budget.tick()
    assert budget.stretch == 8
    for _ in range(4):
        clocks.run(5.0, 0.001)
        budget.tick()
    assert budget.stretch == 1


def test_a_cost_that_scales_with_the_redraw_rate_settles():
    # The UI spends 0.2% of a core on its own plus 3% / stretch on redraws: stretch 4 gives 0.95%, within
    # budget, and halving it would give 1.7%; the factor must settle at 4, not bounce between 2 and 4.
    clocks = FakeClocks()
    budget = budget_with(clocks)
    seen = []
    for _ in range(12):
        clocks.run(5.0, 0.002 + 0.03 / budget.stretch)
        budget.tick()
        seen.append(budget.stretch)
    assert seen[3:] == [4] * 9


def over_budget(ceilings, windows: int = 6) -> RefreshBudget:
    """A budget whose UI thread spent 5% of a core (5x the budget) for `windows` windows in a row."""
    clocks = FakeClocks()
    budget = budget_with(clocks, ceilings)
    for _ in range(windows):
        clocks.run(5.0, 0.05)
        budget.tick()
    return budget


@pytest.mark.parametrize("device, in_process, numbers, charts, mode", [
    ("cpu", True, 2.0, 10.0, "CPU run in this process"),
    ("cuda:0", True, 2.0, 2.0, "GPU run in this process"),
    (None, True, 2.0, 2.0, "GPU run in this process"),  # before RunStarted: nothing to chart yet
    ("cpu", False, 2.0, 2.0, "run in another process"),  # attach, serve, view
    ("cuda:0", False, 2.0, 2.0, "run in another process"),
])
def test_each_modes_ceilings_hold_however_far_over_budget(device, in_process, numbers, charts, mode):
    ceilings = ceilings_for(device=device, in_process=in_process)
    assert ceilings.mode == mode
    budget = over_budget(ceilings)
    assert budget.stretch == 8  # as stretched as it gets
    assert budget.numbers(1.0) == numbers
    assert budget.charts(2.0) == charts


def test_a_cpu_runs_charts_stretch_step_by_step_to_ten_seconds():
    clocks = FakeClocks()
    budget = budget_with(clocks, ceilings_for(device="cpu", in_process=True))
    seen = []
    for _ in range(4):
        clocks.run(5.0, 0.05)
        budget.tick()
        seen.append((budget.numbers(1.0), budget.charts(2.0)))
    assert seen == [(2.0, 4.0), (2.0, 8.0), (2.0, 10.0), (2.0, 10.0)]


def test_ceilings_follow_the_device_once_it_is_known():
    budget = over_budget(ceilings_for(device=None, in_process=True))
    assert budget.charts(2.0) == 2.0
    budget.ceilings = ceilings_for(device="cpu", in_process=True)  # what the dashboard does on RunStarted
    assert budget.charts(2.0) == 10.0
