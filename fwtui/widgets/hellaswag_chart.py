"""The dashboard's HellaSwag chart: acc_norm at each scoring against iterations, beside the loss.

Hidden until the run's first HellaSwag event (a run that never scores looks as it always did). An "o"
marks each scoring, joined by a line; dotted lines, named on the chart, give chance (0.25) and GPT-2 124M's
acc_norm (0.2955), read from presets/references.toml, so a value reads without a table or a legend. Iterations only on x: a few
points, where tokens or wall time would say nothing more.
"""

from __future__ import annotations

from trainer.data.hellaswag import CHANCE, GPT2_124M_ACC_NORM
from trainer.observe.events import HellaSwag

from fwtui import format as fmt
from fwtui.widgets.charts import History, _Chart
from fwtui.widgets.reference_lines import draw_references


def hellaswag_text(event: HellaSwag) -> str:
    """The event log's line for a scoring."""
    return (f"iter {fmt.count(event.iter)} HellaSwag: acc_norm {event.acc_norm:.4f} · acc {event.acc:.4f} "
            f"({fmt.count(event.count)} examples; GPT-2 124M {GPT2_124M_ACC_NORM}, chance {CHANCE}) · "
            f"training paused {fmt.seconds(event.seconds)}")


class HellaSwagChart(_Chart):
    DEFAULT_CSS = """
    HellaSwagChart { display: none; width: 1fr; height: 1fr; border: round $primary; }
    DashboardScreen.-narrow HellaSwagChart { width: 100%; height: 10; }
    """

    def __init__(self, scores: History, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.scores = scores
        self.set_title("HellaSwag acc_norm by iter")

    def draw(self, plt, legend: bool) -> None:
        most = max(20, self.size.width * 2)
        xs, ys = self.scores.series(most)
        if not xs:
            return
        ends = [xs[0], xs[-1]] if len(xs) > 1 else [xs[0] - 1, xs[0] + 1]
        # GPT-2 124M and chance, from presets/references.toml, named on the chart: no legend needed
        levels = draw_references(plt, "hellaswag", [], "iter", False, (ends[0], ends[-1]))
        if len(xs) > 1:
            plt.plot(xs, ys, marker="braille", color="magenta")
        plt.scatter(xs, ys, marker="o", color="magenta", label="acc_norm" if legend else None)
        self.axes(plt, ends, ys, also=levels)

    def redraw(self) -> bool:
        scored = self.scores.latest is not None
        if scored != self.display:
            self.display = scored
        if scored:
            self.set_title(f"HellaSwag acc_norm by iter · last {self.scores.latest[1]:.4f}")
        return super().redraw() if scored else False
