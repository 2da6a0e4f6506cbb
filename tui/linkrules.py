"""The directed link rules in force, rebuilt from the status document's fault list.

`status` lists faults as {"id", "fault", "describe", "heals_with"}; for link faults the
supervisor has already resolved roles to names, so `describe` ("partition r0 <-> r1,r2",
"delay r0 -> broker 50ms +-10ms", "loss r1 -> r2 p=0.3") carries everything the matrix
needs. When a fault entry carries "src"/"dst" (and "ms"/"p"...) fields those win; the
describe line is the fallback. The folding itself is faults.linkplan's, so the matrix shows
exactly the table the router was sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from faults.linkplan import link_table
from faults.model import Fault

_LINK = re.compile(r"^(partition|delay|loss|duplicate) (\S+) (<->|->) (\S+)(.*)$")
_MS = re.compile(r"([\d.]+)ms")
_P = re.compile(r"p=([\d.eE+-]+)")


@dataclass(frozen=True)
class Rule:
    """What the router does to one directed link (delay and jitter in ms)."""

    drop: bool = False
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0


def _fault(entry: dict[str, Any]) -> Fault | None:
    """The link fault an entry of the status fault list describes, or None."""
    kind = entry.get("fault")
    if kind not in ("partition", "delay", "loss", "duplicate"):
        return None
    src, dst = entry.get("src"), entry.get("dst")
    if isinstance(src, list) and isinstance(dst, list):
        return Fault(
            kind=kind,
            src=tuple(src),
            dst=tuple(dst),
            oneway=bool(entry.get("oneway", False)),
            delay=float(entry.get("delay", 0.0) or 0.0),
            jitter=float(entry.get("jitter", 0.0) or 0.0),
            p=float(entry.get("p", 0.0) or 0.0),
            links=tuple(tuple(x) for x in entry.get("links") or ()),  # a partition shape
        )
    m = _LINK.match(str(entry.get("describe", "")))
    if m is None:
        return None
    _, a, arrow, b, rest = m.groups()
    ms = [float(x) for x in _MS.findall(rest)]
    p = _P.search(rest)
    return Fault(
        kind=kind,
        src=tuple(a.split(",")),
        dst=tuple(b.split(",")),
        oneway=arrow == "->",
        delay=(ms[0] / 1000.0) if ms else 0.0,
        jitter=(ms[1] / 1000.0) if len(ms) > 1 else 0.0,
        p=float(p.group(1)) if p else 0.0,
    )


def link_rules(faults: list[dict[str, Any]]) -> dict[tuple[str, str], Rule]:
    """(src, dst) -> Rule for every directed link a fault in force touches."""
    parsed = [f for f in (_fault(e) for e in faults) if f is not None]
    out: dict[tuple[str, str], Rule] = {}
    for row in link_table(parsed):
        r = row["rule"]
        out[(row["src"], row["dst"])] = Rule(
            drop=bool(r.get("drop")),
            delay_ms=float(r.get("delay", 0.0)) * 1000.0,
            jitter_ms=float(r.get("jitter", 0.0)) * 1000.0,
            loss=float(r.get("loss", 0.0)),
            duplicate=float(r.get("duplicate", 0.0)),
        )
    return out
