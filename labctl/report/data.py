"""A run record folded into what the report draws: no plotting here.

`load_run(run_dir)` reads lab.json, summary.json, events.jsonl and history.jsonl (never
the message trace: the space-time diagram reads only its window of it) and returns a
`RunData`: parameters, verdict and expectations, fault intervals, per-node timelines
(role and term, commit and applied index, leases in true time, paused and killed
intervals), violations and completed operations. Times stay the lab's true time; `t0` is
where the run starts, and figures show seconds since then.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from faults.model import LINK_KINDS
from protocols.display import DEFAULT_DISPLAY, Display

ROLE_EVENTS = {
    "became_leader": "leader",
    "became_follower": "follower",
    "became_candidate": "candidate",
    "stepped_down": "follower",
}
# Which of several role changes folded into one mark it shows (the highest).
MARK_WEIGHT = {"became_follower": 0, "became_candidate": 1, "stepped_down": 2, "became_leader": 3}


@dataclass
class FaultBand:
    """One fault from when it fired to when it was healed (or the run ended)."""

    n: int  # F1, F2... in the order fired
    kind: str
    label: str  # the fault vocabulary's describe(): "partition r0 <-> r1,r2"
    start: float
    end: float
    nodes: list[str]
    healed: bool


@dataclass
class NodeLine:
    """One replica's timeline."""

    name: str
    roles: list[tuple[float, float, str, int | None]] = field(default_factory=list)
    status: list[tuple[float, int, int]] = field(default_factory=list)  # t, commit, applied
    leases: list[tuple[float, float]] = field(default_factory=list)  # true time, merged
    down: list[tuple[float, float, str]] = field(default_factory=list)  # paused | killed
    marks: list[tuple[float, str, str]] = field(default_factory=list)  # t, kind, label


@dataclass
class Violation:
    kind: str
    t: float
    nodes: list[str]
    detail: str
    evidence: dict[str, Any]


@dataclass
class RunData:
    path: Path
    name: str
    protocol: str
    replicas: list[str]
    params: dict[str, Any]
    verdict: str  # pass | fail | safe | unsafe
    expectations: list[dict[str, Any]]
    t0: float
    t_end: float
    faults: list[FaultBand]
    nodes: dict[str, NodeLine]
    violations: list[Violation]
    ops: dict[str, list[tuple[float, float, str]]]  # type -> (t completed, latency ms, op)
    invoked: int
    events: list[dict[str, Any]]  # the events a space-time diagram marks (roles, faults)
    display: Display = DEFAULT_DISPLAY  # the protocol's roles and words

    @property
    def term_word(self) -> str:
        return self.display.term_word

    def role_colour(self, role: str) -> str:
        r = self.display.role(role)
        return r.colour if r is not None else "#dddddd"

    def rel(self, t: float) -> float:
        return t - self.t0


_decoder = msgspec.json.Decoder()


def _jsonl(path: Path, skip: tuple[bytes, ...] = ()) -> list[dict[str, Any]]:
    """Records of a JSON-lines file; a torn or broken line is skipped (as `labctl check`)."""
    out: list[dict[str, Any]] = []
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return out
    with f:
        for line in f:
            if skip and any(s in line for s in skip):
                continue
            try:
                rec = _decoder.decode(line)
            except msgspec.DecodeError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("t"), (int, float)):
                out.append(rec)
    return out


def _json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def load_run(run_dir: Path | str) -> RunData:
    root = Path(run_dir)
    lab = _json(root / "lab.json")
    config = lab.get("config") if isinstance(lab.get("config"), dict) else {}
    summary = _json(root / "summary.json")
    # applied events are one per command per replica: the report reads indices from
    # node.status instead, and skipping them halves the parse of a busy run.
    events = _jsonl(root / "events.jsonl", skip=(b'"kind":"applied"',))
    events.sort(key=lambda e: e["t"])
    history = _jsonl(root / "history.jsonl")
    protocol = str(config.get("protocol") or summary.get("protocol") or "?")
    replicas = [str(r) for r in config.get("replicas") or []]
    if not replicas:
        replicas = sorted({e["src"] for e in events if e.get("kind") == "node.ready"})
    t0 = next((e["t"] for e in events if e.get("kind") == "lab.ready"), None)
    if t0 is None:
        t0 = events[0]["t"] if events else 0.0
    t_end = max([events[-1]["t"] if events else t0] + [h["t"] for h in history[-1:]])
    workload = next((e.get("workload") for e in events if e.get("kind") == "workload.start"), None)
    options = config.get("options") or {}
    params = {
        "scenario": config.get("name") or summary.get("scenario") or "lab",
        "protocol": protocol,
        "mutation": (options.get("mutate") if isinstance(options, dict) else None) or "none",
        "seed": config.get("seed", summary.get("seed")),
        "nodes": len(replicas),
        "options": options or {},
        "workload": workload,
        "fencing": config.get("fencing"),
        "duration_s": round(t_end - t0, 2),
    }
    violations = _violations(events, summary)
    verdict = summary.get("verdict") or ("unsafe" if violations else "safe")
    nodes = {r: NodeLine(r) for r in replicas}
    faults = _faults(events, t_end, replicas)
    display = _display(config, protocol)
    _fold_nodes(nodes, events, faults, t_end, display)
    ops: dict[str, list[tuple[float, float, str]]] = {"ok": [], "fail": [], "info": []}
    invoked = 0
    for h in history:
        kind = h.get("type")
        if kind == "invoke":
            invoked += 1
        elif kind in ops:
            lat = h.get("latency_ms")
            ops[kind].append(
                (h["t"], float(lat) if isinstance(lat, (int, float)) else 0.0, str(h.get("op", "")))
            )
    marks = [
        e
        for e in events
        if e.get("kind") in ROLE_EVENTS
        or e.get("kind") in ("fault", "fault.healed", "process.exit")
    ]
    return RunData(
        path=root,
        name=str(params["scenario"]),
        protocol=protocol,
        replicas=replicas,
        params=params,
        verdict=str(verdict),
        expectations=list(summary.get("expectations") or []),
        t0=t0,
        t_end=t_end,
        faults=faults,
        nodes=nodes,
        violations=violations,
        ops=ops,
        invoked=invoked,
        events=marks,
        display=display,
    )


def _display(config: dict[str, Any], protocol: str) -> Display:
    """The protocol's roles and words as the lab recorded them in lab.json; for a run from
    before that, the protocol class if it is installed here; else the leader-based default."""
    try:
        if config.get("display") is not None:
            return Display.of_status(config)
    except ValueError:
        pass
    import protocols

    try:
        return protocols.get(protocol).display()
    except (protocols.UnknownProtocol, protocols.StaleMetadata):
        return DEFAULT_DISPLAY


def _violations(events: list[dict[str, Any]], summary: dict[str, Any]) -> list[Violation]:
    out = [
        Violation(
            str(e.get("violation")),
            float(e.get("at", e["t"])),
            list(e.get("nodes") or []),
            str(e.get("detail", "")),
            e.get("evidence") or {},
        )
        for e in events
        if e.get("kind") == "violation"
    ]
    # Found at shutdown (lost writes) or by a scenario's final check: the summary may hold more.
    listed = summary.get("violations")
    if isinstance(listed, list) and len(listed) > len(out):
        out = [
            Violation(
                str(v.get("kind")),
                float(v.get("t", 0.0)),
                list(v.get("nodes") or []),
                str(v.get("detail", "")),
                v.get("evidence") or {},
            )
            for v in listed
            if isinstance(v, dict)
        ]
    out.sort(key=lambda v: v.t)
    return out


def _faults(events: list[dict[str, Any]], t_end: float, replicas: list[str]) -> list[FaultBand]:
    """Pair every fault with what healed it: link faults with the `fault.healed` naming
    them, pause with its timer or a resume, kill with a restart, clock/disk/byzantine with
    the next neutral setting of that node."""
    bands: list[FaultBand] = []
    open_by_node: dict[tuple[str, str], FaultBand] = {}
    open_links: list[FaultBand] = []

    def close(band: FaultBand, t: float) -> None:
        band.end, band.healed = t, True

    for e in events:
        kind = e.get("kind")
        t = e["t"]
        if kind == "fault":
            fk = str(e.get("fault", ""))
            label = str(e.get("describe", fk))
            node = str(e.get("node", ""))
            if fk in LINK_KINDS:
                band = FaultBand(
                    len(bands) + 1,
                    fk,
                    label,
                    t,
                    t_end,
                    sorted(set(e.get("from", [])) | set(e.get("to", []))),
                    False,
                )
                bands.append(band)
                open_links.append(band)
                continue
            group = {"resume": "pause", "restart": "kill"}.get(fk, fk)
            prior = open_by_node.pop((group, node), None)
            if prior is not None:
                close(prior, t)
            if fk in ("resume", "restart"):
                if prior is None and fk == "restart":  # a crash (process.exit) then a restart
                    crash = open_by_node.pop(("crash", node), None)
                    if crash is not None:
                        close(crash, t)
                continue
            if fk in ("clock", "disk", "byzantine") and _neutral(label):
                continue
            band = FaultBand(len(bands) + 1, fk, label, t, t_end, [node] if node else [], False)
            if fk == "disk" and "stall=" in label:
                stall = _number_after(label, "stall=")
                if stall:
                    band.end, band.healed = min(t + stall, t_end), True
                    bands.append(band)
                    continue
            bands.append(band)
            open_by_node[(group, node)] = band
        elif kind == "fault.healed":
            healed = e.get("healed")
            if isinstance(healed, list):
                names = set(map(str, healed))
                for band in [b for b in open_links if b.label in names]:
                    close(band, t)
                    open_links.remove(band)
            elif e.get("node"):
                band = open_by_node.pop(("pause", str(e["node"])), None)
                if band is not None:
                    close(band, t)
        elif kind == "process.exit" and e.get("node") in replicas:
            node = str(e["node"])
            if ("kill", node) not in open_by_node and ("crash", node) not in open_by_node:
                band = FaultBand(
                    len(bands) + 1,
                    "crash",
                    f"{node} exited (code {e.get('code')})",
                    t,
                    t_end,
                    [node],
                    False,
                )
                bands.append(band)
                open_by_node[("crash", node)] = band
    return bands


def _neutral(label: str) -> bool:
    """A clock/disk/byzantine setting that undoes the fault (the vocabulary's heal)."""
    return (
        label.endswith("offset=+0s drift=+0")
        or label.endswith("fsync=+0ms stall=0s")
        or label.endswith("mode=honest")
    )


def _number_after(label: str, key: str) -> float | None:
    try:
        return float(label.split(key, 1)[1].split()[0].rstrip("s"))
    except (IndexError, ValueError):
        return None


def _fold_nodes(
    nodes: dict[str, NodeLine],
    events: list[dict[str, Any]],
    faults: list[FaultBand],
    t_end: float,
    display: Display = DEFAULT_DISPLAY,
) -> None:
    word = display.term_word
    changes: dict[str, list[tuple[float, str, int | None]]] = {n: [] for n in nodes}
    raw_leases: dict[str, list[tuple[float, float]]] = {n: [] for n in nodes}
    for e in events:
        src = e.get("src")
        kind = e.get("kind")
        if src not in nodes:
            continue
        line = nodes[src]
        term = e.get("term") if isinstance(e.get("term"), int) else None
        if kind == "node.status":
            role = str(e.get("role") or "?")
            changes[src].append((e["t"], role, term))
            commit, applied = e.get("commit_index"), e.get("applied_index")
            if isinstance(commit, int) and isinstance(applied, int):
                line.status.append((e["t"], commit, applied))
            expiry = e.get("lease_expiry_true")
            if isinstance(expiry, (int, float)) and expiry > e["t"]:
                raw_leases[src].append((e["t"], float(expiry)))
        elif kind in ROLE_EVENTS:
            # Role events say leader/follower/candidate; the protocol's status says its own
            # words (PBFT: primary/backup/view_changing): the display maps one to the other.
            changes[src].append((e["t"], display.role_after(e) or ROLE_EVENTS[kind], term))
            how = e.get("how") or e.get("reason") or ""
            label = ROLE_EVENTS[kind] if kind != "stepped_down" else "stepped down"
            if term is not None:
                label += f", {word} {term}"
            if how:
                label += f" ({how})"
            if line.marks and e["t"] - line.marks[-1][0] < 0.005:
                # Changes a few ms apart get one label (stepped down, then follower: one
                # transition reported twice), but the mark is the weightiest of them, at
                # its own time: an election won 2 ms after the candidacy is a new leader's
                # star (and the evidence a violation names), not a candidate's diamond.
                t_prev, kind_prev, label_prev = line.marks[-1]
                if label_prev.split(",")[0] != label.split(",")[0]:
                    label_prev = f"{label_prev}; {label.split(',')[0]}"
                elif ";" not in label_prev:
                    label_prev = label  # the same change again (a pre-vote, then the vote)
                if MARK_WEIGHT[kind] > MARK_WEIGHT[kind_prev]:
                    t_prev, kind_prev = e["t"], kind
                line.marks[-1] = (t_prev, kind_prev, label_prev)
                continue
            line.marks.append((e["t"], kind, label))
        elif kind == "lease":
            expiry = e.get("expiry_true")
            if isinstance(expiry, (int, float)) and expiry > e["t"]:
                raw_leases[src].append((e["t"], float(expiry)))
    for name, line in nodes.items():
        seq = changes[name]
        for i, (t, role, term) in enumerate(seq):
            end = seq[i + 1][0] if i + 1 < len(seq) else t_end
            if line.roles and line.roles[-1][2] == role and line.roles[-1][3] == term:
                s, _, r, tm = line.roles[-1]
                line.roles[-1] = (s, end, r, tm)
            else:
                line.roles.append((t, end, role, term))
        line.leases = merge_intervals(raw_leases[name])
    for band in faults:
        if band.kind in ("pause", "kill", "crash"):
            for n in band.nodes:
                if n in nodes:
                    what = "paused" if band.kind == "pause" else "killed"
                    nodes[n].down.append((band.start, band.end, what))


def merge_intervals(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def lease_overlaps(nodes: dict[str, NodeLine]) -> list[tuple[float, float, str, str]]:
    """Intervals of true time where two nodes both believed they held a lease."""
    names = sorted(nodes)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            for s1, e1 in nodes[a].leases:
                for s2, e2 in nodes[b].leases:
                    s, e = max(s1, s2), min(e1, e2)
                    if s < e:
                        out.append((s, e, a, b))
    return out
