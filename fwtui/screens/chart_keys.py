"""The chart keys every screen with charts shares: `x` the x axis, `l` log y, `m` the train loss's EMA, `r`
the reference lines (presets/references.toml).

A screen mixes in ChartKeys, adds CHART_BINDINGS to its BINDINGS, keeps a `chart_view`
(fwtui.widgets.charts.ChartView) that its charts read, and redraws them in `redraw_charts_for_view`.
"""

from __future__ import annotations

from textual.binding import Binding

from fwtui.chart_math import SMOOTHING_FACTORS, X_AXES, next_in

CHART_BINDINGS = [
    Binding("x", "chart_x", "x axis"),
    Binding("l", "chart_log", "log y"),
    Binding("m", "chart_smoothing", "smoothing"),
    Binding("r", "chart_references", "refs"),
]

class ChartKeys:
    chart_view: object

    def action_chart_x(self) -> None:
        self.chart_view.x_axis = next_in(X_AXES, self.chart_view.x_axis)
        self._chart_view_changed()

    def action_chart_log(self) -> None:
        self.chart_view.log_y = not self.chart_view.log_y
        self._chart_view_changed()

    def action_chart_smoothing(self) -> None:
        self.chart_view.smoothing = next_in(SMOOTHING_FACTORS, self.chart_view.smoothing)
        self._chart_view_changed()

    def action_chart_references(self) -> None:
        self.chart_view.references = not self.chart_view.references
        self._chart_view_changed()

    def _chart_view_changed(self) -> None:
        self.notify(self.chart_view.describe(), timeout=2)
        self.redraw_charts_for_view()

    def redraw_charts_for_view(self) -> None:  # pragma: no cover - each screen redraws its own charts
        raise NotImplementedError
