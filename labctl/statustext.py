"""`labctl status` as text: the nodes table, leaders, faults in force and violations.

Plain text (ANSI colour only when asked), so a status call imports nothing heavy and the
same text serves a terminal, a pipe and `labctl up --table`.
"""

from __future__ import annotations

from typing import Any

from protocols.display import DEFAULT_DISPLAY, Display, format_cell

RED, BOLD, RESET = "\x1b[31m", "\x1b[1m", "\x1b[0m"
MAX_VIOLATIONS = 10  # listed in full; the rest are counted (`--json` has every one)


def render(doc: dict[str, Any], color: bool = False, uptime: bool = True) -> str:
    """The whole status as lines of text. `uptime=False` leaves out what changes every
    call, so a caller can print it again only when something else changed."""

    def paint(text: str, style: str) -> str:
        return f"{style}{text}{RESET}" if color else text

    leaders = doc.get("leaders") or []
    nodes = doc.get("nodes") or []
    title = f"{doc.get('protocol')} · {len(nodes)} replicas · seed {doc.get('seed')}"
    if uptime and doc.get("uptime") is not None:
        title += f" · up {doc['uptime']:.1f}s"
    out = [title]
    # The protocol's own columns, as it declares them (the supervisor sends its display).
    try:
        display = Display.of_status(doc)
    except ValueError:
        display = DEFAULT_DISPLAY  # a display we cannot read: still show the lab
    columns = display.status_columns()
    header = ["node", "pid", "state", *(c.header for c in columns)]
    rows = []
    for n in nodes:
        state = str(n.get("state"))
        if n.get("paused_for"):
            state += f" {n['paused_for']:.1f}s" if uptime else " (timed)"
        rows.append([str(n.get("id")), _s(n.get("pid")), state,
                     *(format_cell(display, c, n) for c in columns)])  # fmt: skip
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    for n, row in zip(nodes, rows, strict=True):
        line = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        claims = display.leads(n.get("role"))
        out.append(paint(line, BOLD + RED) if claims and len(leaders) > 1 else line)
    if len(leaders) > 1:
        out.append(paint(f"{len(leaders)} LEADERS: {', '.join(leaders)}", BOLD + RED))
    faults = doc.get("faults") or []
    out.append("faults: " + ("; ".join(f["describe"] for f in faults) if faults else "none"))
    violations = doc.get("violations") or []
    if not violations:
        out.append("violations: none")
    else:
        out.append(paint(f"violations: {len(violations)}", BOLD + RED))
        for v in violations[:MAX_VIOLATIONS]:
            nodes_ = ",".join(v.get("nodes") or [])
            out.append(paint(f"  {v.get('kind'):<16} {nodes_}: {v.get('detail')}", RED))
        if len(violations) > MAX_VIOLATIONS:
            out.append(f"  ... {len(violations) - MAX_VIOLATIONS} more (labctl status --json)")
    return "\n".join(out)


def _s(v: Any) -> str:
    return "-" if v is None else str(v)
