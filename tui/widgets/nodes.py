"""The nodes panel: one row per replica, as many columns as the width allows.

Columns have a priority: on 80 columns the ones that tell the story (state, role, term, the
leader each node believes in, commit, log, lease) stay, pid, memory and restarts go first.
Every node that claims leadership is highlighted in red while more than one does.

Each protocol tells its own story: Raft's and naive's are roles, terms and leases; EPaxos
has no leader, so its rows show instances committed and executed, the fast-path ratio,
instances in recovery and the ballot; PBFT's show the view and its primary, sequence
numbers, the stable checkpoint and watermarks, and which replica is lying.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from rich.text import Text

from tui.model import LEADER_ROLES, LabModel
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
    if role in LEADER_ROLES:
        return Text(role, "bold" if m.split_brain else "bold green")
    if role == "candidate":
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


def _ratio(key: str) -> Callable[[LabModel, str, dict[str, Any]], Text]:
    def cell(m: LabModel, n: str, s: dict[str, Any]) -> Text:
        v = s.get(key)
        return Text("-", "dim") if v is None else Text(f"{float(v) * 100:.0f}%")

    return cell


def _count(key: str, style: str) -> Callable[[LabModel, str, dict[str, Any]], Text]:
    """A number that is news when it is not zero (instances in recovery, view changes)."""

    def cell(m: LabModel, n: str, s: dict[str, Any]) -> Text:
        v = s.get(key)
        return Text(_s(v), style if v else "dim")

    return cell


def _watermarks(m: LabModel, n: str, s: dict[str, Any]) -> Text:
    low, high = s.get("low_watermark"), s.get("high_watermark")
    return Text("-", "dim") if low is None else Text(f"{low}-{high}")


def _byzantine(m: LabModel, n: str, s: dict[str, Any]) -> Text:
    mode = s.get("byzantine")
    return Text(mode, "bold white on red3") if mode else Text("honest", "dim")


COLUMNS: list[Column] = [
    Column("node", 0, lambda m, n, s: Text(n, "bold")),
    Column("pid", 11, _field("pid"), "right"),
    Column("state", 1, _state),
    Column("role", 2, _role),
    Column("term", 3, _field("term"), "right"),
    Column("leader", 4, _field("leader")),
    Column("commit", 5, _field("commit_index"), "right"),
    Column("applied", 8, _field("applied_index"), "right"),
    Column("log", 6, _field("log"), "right"),
    Column("lease", 7, _lease),
    Column("clock", 9, _clock),
    Column("cpu", 10, _cpu, "right"),
    Column("mem", 12, _mem, "right"),
    Column("restarts", 13, _restarts, "right"),
]


_COMMON_TAIL = [c for c in COLUMNS if c.header in ("clock", "cpu", "mem", "restarts", "pid")]

EPAXOS_COLUMNS: list[Column] = [
    COLUMNS[0],
    COLUMNS[2],  # state
    Column("committed", 3, _field("committed"), "right"),
    Column("executed", 4, _field("executed"), "right"),
    Column("fast", 5, _ratio("fast_path_ratio"), "right"),
    Column("recovering", 6, _count("recovering", "bold yellow"), "right"),
    Column("ballot", 7, _field("ballot"), "right"),
    *_COMMON_TAIL,
]

PBFT_COLUMNS: list[Column] = [
    COLUMNS[0],
    COLUMNS[2],  # state
    Column("role", 2, _role),
    Column("view", 3, _field("view"), "right"),
    Column("primary", 4, _field("primary")),
    # The next sequence number is the primary's to assign; a backup's counter means nothing.
    Column(
        "seq",
        7,
        lambda m, n, s: Text(
            _s(s.get("seq")) if s.get("role") == "primary" else "-",
            "" if s.get("role") == "primary" else "dim",
        ),
        "right",
    ),
    Column("commit", 5, _field("commit_index"), "right"),
    Column("applied", 8, _field("applied_index"), "right"),
    Column("ckpt", 6, _field("checkpoint"), "right"),
    Column("window", 9, _watermarks, "right"),
    Column("vc", 8, _count("view_changes", "yellow"), "right"),
    Column("byzantine", 3, _byzantine),
    *_COMMON_TAIL,
]

# External replicas (the user's Maelstrom program): what the adapter sees, and the role
# and term the program reports if it sends the optional lab_role message.
EXTERNAL_COLUMNS: list[Column] = [
    COLUMNS[0],
    COLUMNS[2],  # state
    COLUMNS[3],  # role
    COLUMNS[4],  # term
    Column("in", 5, _field("msgs_in"), "right"),
    Column("out", 5, _field("msgs_out"), "right"),
    Column("errors", 4, _count("errors", "bold red"), "right"),
    Column("program", 8, _field("program_pid"), "right"),
    *_COMMON_TAIL,
]

COLUMNS_BY_PROTOCOL = {"epaxos": EPAXOS_COLUMNS, "pbft": PBFT_COLUMNS,
                       "external": EXTERNAL_COLUMNS}  # fmt: skip


def render_nodes(model: LabModel, width: int) -> Text:
    if not model.nodes:
        return Text(model.unreachable or "waiting for the lab's status…", "dim")
    columns = COLUMNS_BY_PROTOCOL.get(model.protocol, COLUMNS)
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
