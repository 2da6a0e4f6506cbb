"""One line of text (and a style) for each telemetry event worth showing in the events panel.

Elections, step-downs, faults and heals, process exits and restarts, broker rejections and
safety violations are shown; everything else (status, votes, applies...) feeds the other
panels instead. A violation arrives as kind "violation" with its checker kind in
"violation" (or "check"), "detail" and "nodes"; a record whose kind is a checker kind
("split-brain"...) is read the same way, so either spelling from the supervisor shows.
"""

from __future__ import annotations

from typing import Any

from labctl.checkers.base import KINDS

VIOLATION_KINDS = frozenset(KINDS)  # the checkers' list: one place knows the kinds

# Kinds the feed keeps as individual events (everything else is folded or dropped there).
NOTABLE = frozenset(
    {
        "became_leader",
        "stepped_down",
        "became_candidate",
        "fault",
        "fault.healed",
        "process.exit",
        "violation",
        "lab.ready",
        "lab.stopped",
        "lab.failed",
        "lab.parent_gone",
        "node.ready",
        "broker.write",
    }
    | VIOLATION_KINDS
)

VIOLATION_STYLE = "bold white on red"


def is_violation(event: dict[str, Any]) -> bool:
    return event.get("kind") == "violation" or event.get("kind") in VIOLATION_KINDS


def election(src: str, pre_vote: bool, count: int, first: Any, last: Any) -> str:
    """An election line, for one attempt or `count` in a row (folded by the model: a cut-off
    follower stands every election timeout, and one line per attempt would push every
    fault and heal off the panel). A pre-vote asks whether it could win the next term
    without raising its own, so it names the term it would stand in."""
    if pre_vote:
        would = {t + 1 if isinstance(t, int) else t for t in (first, last)}
        terms = "-".join(str(t) for t in sorted(would, key=str))
        if count == 1:
            return f"{src} asks for pre-votes (for term {terms})"
        plural = "s" if len(would) > 1 else ""
        return f"{src} asked for pre-votes x{count} (for term{plural} {terms})"
    if count == 1:
        return f"{src} stands for election, term {last}"
    span = f"terms {first}-{last}" if first != last else f"term {last}"
    return f"{src} stood for election x{count}, {span}"


def describe(
    event: dict[str, Any], words: tuple[str, str] = ("leader", "term")
) -> tuple[str, str] | None:
    """(text, rich style) for a notable event, or None when it is not shown. `words` are
    the protocol's for its leader and its number (PBFT: primary, view)."""
    kind = str(event.get("kind", ""))
    src = str(event.get("src", "?"))
    term = event.get("term")
    leader, term_word = words
    in_term = f", {term_word} {term}" if term is not None else ""
    if is_violation(event):
        which = event.get("violation") or event.get("check") or event.get("type")
        if kind != "violation":
            which = kind
        nodes = event.get("nodes") or []
        detail = event.get("detail") or ", ".join(map(str, nodes))
        return f"VIOLATION {which or '?'}: {detail}", VIOLATION_STYLE
    if kind == "became_leader":
        how = event.get("how")
        text = f"{src} became {leader}{in_term}" + (f" ({how})" if how else "")
        return text, "bold yellow" if how == "self-promoted" else "bold green"
    if kind == "stepped_down":
        reason = event.get("reason")
        return f"{src} stepped down{in_term}" + (f": {reason}" if reason else ""), "cyan"
    if kind == "became_candidate":
        return election(src, bool(event.get("pre_vote")), 1, term, term), "dim"
    if kind == "fault":
        return f"fault: {event.get('describe') or event.get('fault')}", "yellow"
    if kind == "fault.healed":
        healed = event.get("healed")
        if isinstance(healed, list):
            what = "; ".join(map(str, healed)) or "no link faults were in force"
        else:
            what = str(event.get("fault") or "?")
        return f"healed: {what}", "green"
    if kind == "process.exit":
        return f"{event.get('node', src)} exited (code {event.get('code')})", "red"
    if kind == "node.ready":
        rec = event.get("recovered")
        more = f", recovered {rec} WAL records" if rec else ""
        return f"{src} started (pid {event.get('pid')}{more})", "green"
    if kind == "broker.write":
        if event.get("accepted", True):
            return None
        return (
            f"broker rejected {event.get('node') or event.get('from')}'s write "
            f"(token {event.get('token')} < {event.get('highest')})",
            "magenta",
        )
    if kind == "lab.ready":
        nodes = event.get("nodes") or []
        return f"lab ready: {len(nodes)} x {event.get('protocol')}", "green"
    if kind == "lab.stopped":
        return "lab stopped", "bold"
    if kind == "lab.failed":
        return f"lab failed: {event.get('reason')}", "bold red"
    if kind == "lab.parent_gone":
        return "the process that started the lab is gone: stopping", "bold red"
    return None
