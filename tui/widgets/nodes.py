"""The nodes panel: one row per replica, as many columns as the width allows.

Columns have a priority: on 80 columns the ones that tell the story (state, role, term, the
leader each node believes in, commit, log, lease) stay, pid, memory and restarts go first.
Every node that claims leadership is highlighted in red while more than one does.

Each protocol tells its own story, in the columns it declares (`Protocol.columns`, carried
by the lab's status as its display): Raft's and naive's are roles, terms and leases;
EPaxos has no leader, so its rows show instances committed and executed, the fast-path
ratio, instances in recovery and the ballot; PBFT's show the view and its primary,
sequence numbers, the stable checkpoint and watermarks, and which replica is lying.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from rich.text import Text

from protocols.display import Column as Declared
from protocols.display import Display, format_cell
from tui.model import LabModel
from tui.widgets.grid import grid
from tui.widgets.panel import Panel

SPLIT_BRAIN_STYLE = "bold white on red3"
LEASE_BAR = 6


@dataclass(frozen=True)
class Column:
    header: str
    priority: int  # lower stays longer when the panel is narrow
    cell: Callable[[LabModel, str, dict[str, Any]], Text]
    justify: str = "left"


def _s(v: Any) -> str:
    return "-" if v is None else str(v)


def _state(m: LabModel, n: str, s: dict[str, Any]) -> Text:
    state = s.get("state") or "?"
    if state == "paused":
        left = m.paused_left(n)
        return Text(f"paused {left:.1f}s" if left is not None else "paused", "bold yellow")
    if state == "stopped":
        return Text("stopped", "bold red")
    return Text(state)


def _role(m: LabModel, n: str, s: dict[str, Any]) -> Text:
    role = s.get("role") or "-"
    if m.display.leads(role):
        return Text(role, "bold" if m.split_brain else "bold green")
    if m.display.is_candidate(role):
        return Text(role, "yellow")
    return Text(role, "dim" if role == "down" else "")


def _lease(m: LabModel, n: str, s: dict[str, Any]) -> Text:
    left = m.lease_left(n)
    if left is None:
        return Text("-", "dim")
    full = m.lease_len.get(n) or left or 1.0
    filled = round(LEASE_BAR * min(1.0, left / full)) if full > 0 else 0
    style = "green" if left > 0 else "dim"
    # Raft's leases are a few hundred ms, renewed every heartbeat: seconds would read 0.0s.
    when = f"{left * 1000:.0f}ms" if left < 1.0 else f"{left:.1f}s"
    return Text("▰" * filled + "▱" * (LEASE_BAR - filled) + f" {when}", style)


def _clock(m: LabModel, n: str, s: dict[str, Any]) -> Text:
    off, drift = s.get("clock_offset") or 0.0, s.get("clock_drift") or 0.0
    if not off and not drift:
        return Text("-", "dim")
    parts = []
    if off:
        parts.append(f"{off * 1000:+.0f}ms" if abs(off) < 1 else f"{off:+.1f}s")
    if drift:
        parts.append(f"{drift * 100:+.1f}%")
    return Text(" ".join(parts), "magenta")


def _cpu(m: LabModel, n: str, s: dict[str, Any]) -> Text:
    u = m.usage.get(n)
    return Text("-" if u is None else f"{u[0]:.0f}%", "" if u and u[0] < 50 else "yellow")


def _mem(m: LabModel, n: str, s: dict[str, Any]) -> Text:
    u = m.usage.get(n)
    return Text("-" if u is None else f"{u[1]:.0f}M")


def _restarts(m: LabModel, n: str, s: dict[str, Any]) -> Text:
    starts = s.get("starts") or 1
    return Text(str(starts - 1) if starts > 1 else "-", "yellow" if starts > 1 else "dim")


def _field(key: str) -> Callable[[LabModel, str, dict[str, Any]], Text]:
    return lambda m, n, s: Text(_s(s.get(key)))


# Styles of the formats a protocol's columns declare (protocols/display.py FORMATS).
NEWS_STYLE = "bold yellow"  # a count that is not zero: instances in recovery, view changes
FLAG_STYLE = "bold white on red3"  # a flag that is set: which replica is lying


def _declared(c: Declared) -> Callable[[LabModel, str, dict[str, Any]], Text]:
    """The cell of one column the protocol declares: its text is `format_cell`'s (the
    same as `labctl status`), the style the format's."""
    if c.format == "role":
        return _role
    if c.format == "lease":
        return _lease

    def cell(m: LabModel, n: str, s: dict[str, Any]) -> Text:
        text = format_cell(m.display, c, s)
        v = s.get(c.key)
        if c.leader_only and not m.display.leads(s.get("role")):
            return Text(text, "dim")
        if c.format == "count":
            return Text(text, NEWS_STYLE if v else "dim")
        if c.format == "flag":
            return Text(text, FLAG_STYLE if v else "dim")
        if c.format in ("percent", "range") and v is None:
            return Text(text, "dim")
        return Text(text)

    return cell


# The lab's own columns, around the protocol's: the node, its process and its machine.
HEAD = [
    Column("node", 0, lambda m, n, s: Text(n, "bold")),
    Column("pid", 11, _field("pid"), "right"),
    Column("state", 1, _state),
]
TAIL = [
    Column("clock", 9, _clock),
    Column("cpu", 10, _cpu, "right"),
    Column("mem", 12, _mem, "right"),
    Column("restarts", 13, _restarts, "right"),
]


def columns_for(display: Display) -> list[Column]:
    """The panel's columns: the lab's, and between them the protocol's declared ones."""
    own = [Column(c.header, c.priority, _declared(c), "right" if c.right else "left")
           for c in display.columns]  # fmt: skip
    return [*HEAD, *own, *TAIL]


def render_nodes(model: LabModel, width: int) -> Text:
    if not model.nodes:
        return Text(model.unreachable or "waiting for the lab's status…", "dim")
    columns = columns_for(model.display)
    cells = {c.header: [c.cell(model, n, s) for n, s in model.nodes.items()] for c in columns}
    widths = {h: max([len(h), *(t.cell_len for t in col)]) for h, col in cells.items()}
    chosen: set[str] = set()
    used = -1  # n columns take n - 1 separators
    for c in sorted(columns, key=lambda c: c.priority):
        if used + 1 + widths[c.header] <= width:
            chosen.add(c.header)
            used += 1 + widths[c.header]
    shown = [c for c in columns if c.header in chosen]
    leaders = set(model.leaders) if model.split_brain else set()
    styles = [
        SPLIT_BRAIN_STYLE if n in leaders else ("dim" if s.get("state") == "stopped" else "")
        for n, s in model.nodes.items()
    ]
    rows = [[cells[c.header][i] for c in shown] for i in range(len(model.nodes))]
    return grid(
        [c.header for c in shown], rows, [widths[c.header] for c in shown],
        [c.justify for c in shown], styles,
    )  # fmt: skip


class NodesPanel(Panel):
    # With telemetry flushed every 100 ms, this keeps any node state change on screen
    # within ~200 ms of the node's event.
    MIN_INTERVAL = 0.1

    def render_model(self, model: LabModel, width: int, height: int) -> Text:
        return render_nodes(model, width)

    def shape(self, model: LabModel) -> Hashable | None:
        return len(model.nodes)
