"""The UI's CPU budget (fwtui.refresh_budget): steady redraws slow down when the UI thread works too much."""

from fwtui.refresh_budget import RefreshBudget


class FakeClocks:
    """A UI thread that spends `share` CPU seconds per wall second."""

    def __init__(self) -> None:
        self.cpu = self.wall = 0.0

    def run(self, seconds: float, share: float) -> None:
        self.wall += seconds
        self.cpu += seconds * share


def budget_with(clocks: FakeClocks) -> RefreshBudget:
    return RefreshBudget(0.01, window=5.0, max_stretch=8, cpu_clock=lambda: clocks.cpu,
                         wall_clock=lambda: clocks.wall)


def test_no_judgement_before_a_whole_window():
    clocks = FakeClocks()
    budget = budget_with(clocks)
    clocks.run(4.9, 0.5)  # a burst far over budget, but the window is not over
    budget.tick()
    assert budget.stretch == 1 and budget.last_share is None
    assert budget.interval(1.0) == 1.0


def test_over_budget_doubles_up_to_the_cap():
    clocks = FakeClocks()
    budget = budget_with(clocks)
    stretches = []
    for _ in range(5):
        clocks.run(5.0, 0.03)
        budget.tick()
        stretches.append(budget.stretch)
    assert stretches == [2, 4, 8, 8, 8]
    assert abs(budget.last_share - 0.03) < 1e-9
    assert budget.interval(2.0) == 16.0


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
