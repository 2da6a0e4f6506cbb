"""The charts panel: throughput and latency sparklines, and a role/lease timeline per node.

One column is one second, newest on the right. Throughput is applied entries per second at
the fastest replica; latency is the median of the acknowledged operations of that second,
from the run's history. In the timelines a leader's glyph turns red for every second in
which more than one node led: the split-brain as a picture.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text

from tui.model import LabModel, Sample
from tui.widgets.panel import Panel

BLOCKS = " ▁▂▃▄▅▆▇█"
_GLYPH_STYLE = {"‖": "yellow", "✕": "red", "·": "dim", "░": "yellow"}


def sparkline(values: Iterable[float], width: int) -> str:
    xs = list(values)[-width:] if width > 0 else []
    top = max(xs, default=0.0)
    if top <= 0:
        return " " * (width - len(xs)) + "▁" * len(xs)
    bars = "".join(BLOCKS[max(1, round(8 * x / top))] if x > 0 else "▁" for x in xs)
    return " " * (width - len(xs)) + bars


def _timeline(samples: Iterable[Sample], width: int) -> Text:
    xs = list(samples)[-width:] if width > 0 else []
    text = Text(" " * (width - len(xs)))
    for s in xs:
        if s.leads:
            text.append(s.glyph, "bold red" if s.alarm else "green")
        else:
            text.append(s.glyph, _GLYPH_STYLE.get(s.glyph, ""))
    return text


def render_charts(model: LabModel, width: int, height: int = 100) -> Text:
    label_w = max(10, *(len(n) + 1 for n in model.nodes)) if model.nodes else 10
    last = model.throughput[-1] if model.throughput else 0.0
    rate = f" {last:.0f}/s"
    summary = model.latency_summary()
    lat = f" p50 {summary[0]:.1f}ms" if summary else " no history"
    spark_w = max(5, width - label_w - max(len(rate), len(lat)))
    if summary and spark_w >= 30:  # room for the tail too
        lat = f" p50 {summary[0]:.1f} p99 {summary[1]:.1f}ms"
        spark_w = max(5, width - label_w - max(len(rate), len(lat)))
    out = Text(no_wrap=True, overflow="crop")
    out.append("applied/s".ljust(label_w), "bold")
    out.append(sparkline(model.throughput, spark_w), "green")
    out.append(rate + "\n")
    out.append("latency".ljust(label_w), "bold")
    out.append(sparkline(model.latency, spark_w), "cyan")
    out.append(lat)
    for n in model.nodes:
        out.append("\n" + n.ljust(label_w), "bold")
        # Same columns as the sparklines above: one column is the same second in every row.
        out.append_text(_timeline(model.timeline.get(n, ()), spark_w))
    if height >= len(model.nodes) + 3:
        legend = model.display.legend()  # the protocol's roles and their glyphs
        out.append("\n" + (legend if width >= len(legend) else legend[:width]), "dim")
    return out


class ChartsPanel(Panel):
    AREA = "charts"

    def render_model(self, model: LabModel, width: int, height: int) -> Text:
        return render_charts(model, width, height)
