"""The links panel: the directed N x N matrix of replicas and the broker.

Row = sender, column = receiver. A cell shows the rule in force on that link (✕ cut,
a delay in ms, a loss or duplicate percentage) and the messages per second the router saw
on it; for a real system's members (etcd), whose peer traffic is TCP through the lab's
fault proxy and not the router, a replica-to-replica cell shows that link's bytes per
second instead (and a cut one the chunks per second it holds back). The matrix takes
the width it needs (up to half the screen) and degrades in steps when it does not fit:
first rule cells drop their rate, then rules shrink to one symbol.
"""

from __future__ import annotations

from collections.abc import Hashable

from rich.text import Text
from textual.geometry import Size

from tui.model import LabModel
from tui.widgets.grid import grid
from tui.widgets.panel import Panel

LEGEND = ("row sends → column", "msgs/s", "✕ cut", "ms delay", "% loss", "x% duplicate")
PEER_LEGEND = "peers: bytes/s (TCP)"  # with a real system's peer links
LEGEND_MIN = 24
FULL, NO_RATES, SYMBOLS = 0, 1, 2  # how much a rule cell says, most first


def _short(name: str) -> str:
    return "brk" if name == "broker" else name


def rate_text(x: float) -> str:
    """At most three characters: 7, 860, 12k."""
    if x < 999.5:
        return f"{x:.0f}"
    return f"{x / 1000:.0f}k" if x < 99500 else "++"


def _cell(model: LabModel, src: str, dst: str, level: int) -> Text:
    if src == dst:
        return Text("·", "dim")
    rule = model.rules.get((src, dst))
    peer = (src, dst) in model.peer_totals  # etcd's own TCP between members
    rate = (model.peer_rates if peer else model.link_rates).get((src, dst))
    seen = peer or (src, dst) in model.link_totals
    sent = rate_text(rate[0]) if rate is not None else ("0" if seen else "")
    if rule is None:
        return Text(sent or "-", "dim" if sent in ("", "0") else "")
    text = Text()
    if rule.drop:
        text.append("✕", "bold red")
        if level == FULL and rate is not None and rate[1]:
            text.append(rate_text(rate[1]), "red")
        return text
    parts: list[tuple[str, str]] = []
    if rule.delay_ms or rule.jitter_ms:
        parts.append((f"{rule.delay_ms:g}ms" if level < SYMBOLS else "d", "yellow"))
    if rule.loss:
        parts.append((f"{rule.loss * 100:.0f}%" if level < SYMBOLS else "%", "magenta"))
    if rule.duplicate:
        parts.append((f"x{rule.duplicate * 100:.0f}%" if level < SYMBOLS else "x", "cyan"))
    for i, (p, style) in enumerate(parts):
        text.append((" " if i and level < SYMBOLS else "") + p, style)
    if level == FULL and sent:
        text.append(f" {sent}", "dim")
    return text


def _layout(model: LabModel, width: int) -> tuple[list[list[Text]], list[int], int]:
    """(cells, column widths, total width) at the most detailed level that fits `width`."""
    names = model.endpoints
    label_w = max(len(_short(n)) for n in names)
    for level in (FULL, NO_RATES, SYMBOLS):
        cells = [[_cell(model, s, d, level) for d in names] for s in names]
        widths = [max(3, *(row[j].cell_len for row in cells)) for j in range(len(names))]
        total = label_w + sum(w + 1 for w in widths)
        if total <= width:
            break
    return cells, widths, total


def natural_width(model: LabModel, max_width: int) -> int:
    if not model.nodes:
        return LEGEND_MIN
    return max(LEGEND_MIN, _layout(model, max_width)[2])


def render_links(model: LabModel, width: int, height: int = 100) -> Text:
    if not model.nodes:
        return Text("no lab", "dim")
    names = model.endpoints
    cells, widths, total = _layout(model, width)
    label_w = max(len(_short(n)) for n in names)
    rows = [[Text(_short(n), "bold"), *row] for n, row in zip(names, cells, strict=True)]
    table = grid(
        ["", *(_short(n) for n in names)], rows, [label_w, *widths],
        ["left", *(["right"] * len(names))],
    )  # fmt: skip
    if height < len(names) + 2:
        return table  # no room for the legend (9 replicas on 24 lines)
    # The legend wraps to the matrix's width so it never widens the panel.
    legend_w = max(min(total, width), LEGEND_MIN)
    lines = [""]
    for item in (*LEGEND, PEER_LEGEND) if model.peer_totals else LEGEND:
        joined = f"{lines[-1]} · {item}" if lines[-1] else item
        if len(joined) <= legend_w or not lines[-1]:
            lines[-1] = joined
        else:
            lines.append(item)
    return Text("\n", no_wrap=True).join([table, *(Text(line, "dim") for line in lines)])


class LinksPanel(Panel):
    AREA = "links"
    MIN_INTERVAL = 0.25  # the router reports four times a second anyway

    def render_model(self, model: LabModel, width: int, height: int) -> Text:
        return render_links(model, width, height)

    def get_content_width(self, container: Size, viewport: Size) -> int:
        # Wide layout: as wide as the matrix wants, but never more than half the screen.
        return natural_width(self.model, self._max_width(container.width))

    def _max_width(self, container: int) -> int:
        return max(LEGEND_MIN, container // 2)

    def shape(self, model: LabModel) -> Hashable | None:
        return natural_width(model, self._max_width(self.app.size.width))
