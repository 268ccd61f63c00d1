"""The seed groups' table (trainer.runs.significance) as text: `fwtui compare --summary`, the compare view's
`t` key and `fwtui report RUN RUN...` print it. Per group: its runs, final val loss and bits per byte as
mean ± sd, HellaSwag when scored; then each pair of groups: the difference of the val loss means with its
95% interval and Welch's p, or why there is no test."""

from __future__ import annotations

from itertools import combinations

from trainer.runs.significance import SIGNIFICANCE, Difference, SeedGroup, Spread, spread, welch


def _mean_sd(s: Spread, digits: int = 4) -> str:
    if s.mean is None:
        return "unknown"
    return f"{s.mean:.{digits}f}" + (f" ± {s.sd:.{digits}f}" if s.sd is not None else " (one run: no sd)")


def group_name(index: int) -> str:
    return chr(ord("A") + index) if index < 26 else f"G{index + 1}"


def group_figures(group: SeedGroup) -> dict[str, str]:
    """The group's cells: runs, val loss, val bpb, HellaSwag (mean ± sd, or "unknown" / "not scored")."""
    hellaswag = spread(group.values("hellaswag"))
    return {"runs": str(len(group.runs)), "val loss": _mean_sd(spread(group.values("val_loss"))),
            "val bpb": _mean_sd(spread(group.values("val_bpb"))),
            "hellaswag": "not scored" if hellaswag.n == 0 else _mean_sd(hellaswag)}


def verdict(d: Difference) -> str:
    """The test's outcome in words: the p-value and whether it clears p < 0.01, or why there is none."""
    if d.p is None:
        return d.note
    words = "significant" if d.significant else "not significant"
    return f"Welch's t-test p = {d.p:.2g} (t = {d.t:.2f}, df = {d.df:.1f}): {words} at p < {SIGNIFICANCE:g}"


def difference_text(d: Difference) -> str:
    if d.diff is None:
        return d.note
    interval = f" (95% interval {d.low:+.4f} to {d.high:+.4f})" if d.low is not None else ""
    return f"{d.diff:+.4f}{interval}; {verdict(d)}"


def pairs(groups: list[SeedGroup]) -> list[tuple[str, str, Difference]]:
    """(name A, name B, Welch of B - A on the final val loss) for each pair of groups, in order."""
    named = list(zip((group_name(i) for i in range(len(groups))), groups))
    return [(na, nb, welch(a.values("val_loss"), b.values("val_loss"))) for (na, a), (nb, b) in combinations(named, 2)]


def summary_lines(groups: list[SeedGroup]) -> list[str]:
    """Plain text, one group (then one pair) a paragraph."""
    lines = ["runs grouped by config less the seed; final val loss (nats/token) and bits per byte as mean ± sd "
             "(sample sd)"]
    for i, group in enumerate(groups):
        cells = group_figures(group)
        lines += ["", f"{group_name(i)}  {group.label}: {cells['runs']} run{'s' if len(group.runs) != 1 else ''} "
                      f"({', '.join(r.name for r in group.runs)})",
                  f"   val loss {cells['val loss']} · val bpb {cells['val bpb']} · HellaSwag {cells['hellaswag']}"]
    found = pairs(groups)
    if found:
        lines.append("")
    for na, nb, d in found:
        lines.append(f"{nb} - {na}  val loss {difference_text(d)}")
    return lines


def summary_markdown(groups: list[SeedGroup]) -> list[str]:
    """The same as two Markdown tables (report.md)."""
    lines = ["| group | config | runs | final val loss (mean ± sd) | val bpb (mean ± sd) | HellaSwag acc_norm |",
             "|---|---|---:|---:|---:|---:|"]
    for i, group in enumerate(groups):
        cells = group_figures(group)
        lines.append(f"| {group_name(i)} | {group.label} | {cells['runs']} | {cells['val loss']} | "
                     f"{cells['val bpb']} | {cells['hellaswag']} |")
    found = pairs(groups)
    if found:
        lines += ["", "| pair | val loss difference | 95% interval | Welch's t-test |", "|---|---:|---:|---|"]
        for na, nb, d in found:
            interval = f"{d.low:+.4f} to {d.high:+.4f}" if d.low is not None else "-"
            diff = "-" if d.diff is None else f"{d.diff:+.4f}"
            lines.append(f"| {nb} - {na} | {diff} | {interval} | {verdict(d)} |")
    return lines
