"""The links panel: the directed N x N matrix of replicas and the broker.

Row = sender, column = receiver. A cell shows the rule in force on that link (✕ cut,
a delay in ms, a loss or duplicate percentage) and the messages per second the router saw
on it; when the matrix would not fit, cells keep the rule and drop the rate.
"""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from tui.model import LabModel
from tui.widgets.panel import Panel

LEGEND = "row sends → column · msgs/s · ✕ cut · ms delay · % loss · ×% duplicate"


def _short(name: str) -> str:
    return "brk" if name == "broker" else name


def _cell(model: LabModel, src: str, dst: str, rates: bool) -> Text:
    if src == dst:
        return Text("·", "dim")
    rule = model.rules.get((src, dst))
    rate = model.link_rates.get((src, dst))
    sent = f"{rate[0]:.0f}" if rate is not None else ("0" if (src, dst) in model.link_totals else "")
    if rule is None:
        return Text(sent or "-", "dim" if sent in ("", "0") else "")
    text = Text()
    if rule.drop:
        text.append("✕", "bold red")
        if rates and rate is not None and rate[1]:
            text.append(f"{rate[1]:.0f}", "red")
        return text
    parts: list[tuple[str, str]] = []
    if rule.delay_ms or rule.jitter_ms:
        parts.append((f"{rule.delay_ms:g}ms", "yellow"))
    if rule.loss:
        parts.append((f"{rule.loss * 100:.0f}%", "magenta"))
    if rule.duplicate:
        parts.append((f"×{rule.duplicate * 100:.0f}%", "cyan"))
    for i, (p, style) in enumerate(parts):
        text.append((" " if i else "") + p, style)
    if rates and sent:
        text.append(f" {sent}", "dim")
    return text


def render_links(model: LabModel, width: int, height: int = 100) -> Group | Text:
    if not model.nodes:
        return Text("no lab", "dim")
    names = model.endpoints
    for rates in (True, False):
        grid = [[_cell(model, s, d, rates) for d in names] for s in names]
        cell_w = max(3, *(t.cell_len for row in grid for t in row))
        label_w = max(len(_short(n)) for n in names)
        if label_w + len(names) * (cell_w + 1) <= width:
            break
    table = Table(box=None, padding=(0, 0, 0, 1), pad_edge=False, show_edge=False)
    table.add_column("", style="bold", no_wrap=True)
    for n in names:
        table.add_column(_short(n), justify="right", header_style="bold", no_wrap=True)
    for n, row in zip(names, grid, strict=True):
        table.add_row(_short(n), *row)
    if height < len(names) + 2:
        return Group(table)  # no room for the legend (9 replicas on 24 lines)
    legend = Text(LEGEND if width >= len(LEGEND) else "✕ cut · ms delay · % loss", "dim")
    return Group(table, legend)


class LinksPanel(Panel):
    def render_model(self, model: LabModel, width: int, height: int) -> Group | Text:
        return render_links(model, width, height)
