"""The space-time (Lamport) diagram: one vertical line per node, time downwards, every
traced frame an arrow from its arrival at the router to its delivery.

Arrows that never arrived end halfway in a red cross (a partition's cut links, losses,
unroutable frames); delayed ones are visibly slanted; the message type is written on the
first arrow of each run of same-type frames on a link (so "Heartbeat" is named once when it
starts and once when it starts to be cut, not 200 times). Role changes are marked on the
lanes, faults are bands, violations red lines, and the violation's evidence (the events
at its times, the messages carrying its view and sequence number) is ringed in red.

`choose_window` picks the default window: around the first violation, taking in the fault
that preceded it; in a safe run, around the first fault and the role changes after it.
"""

from __future__ import annotations

import bisect
import textwrap
from collections import Counter
from dataclasses import dataclass
from typing import Any

from matplotlib.figure import Figure

from faults.trace import Message, Trace
from labctl.report.data import RunData, Violation, lease_overlaps
from labctl.report.figures import VIOLATION_COLOR, fault_color, violation_marks

CLIENTS = "clients"
BROKER = "broker"
MAX_LABELS = 140
TYPE_COLORS = [
    "#1d4e89",
    "#2a9d8f",
    "#e76f51",
    "#8e7dbe",
    "#f4a261",
    "#264653",
    "#b5838d",
    "#588157",
    "#bc6c25",
    "#6d597a",
    "#457b9d",
    "#9c6644",
]
CLIENT_COLOR = (0.6, 0.6, 0.6, 0.35)
TIME_KEYS = ("t", "at", "from", "until", "acked_at")


@dataclass
class Window:
    t0: float  # true time
    t1: float
    why: str  # what the default picked, for the caption
    anchor: float | None = None  # the moment it is about (a default window narrows on it)


# Past this many frames between replicas an arrow no longer reads as an arrow: a default
# window narrows around its anchor until it holds this many (an asked-for one never does).
READABLE_FRAMES = 260
# Past this many frames in all, client and broker traffic is left out of the picture.
CLIENT_FRAMES = 500


def narrow(window: Window, trace: Trace, replicas: set[str]) -> Window:
    """A default window shrunk about its anchor (keeping the share before and after it)
    until the frames between replicas are readable; never below 40 ms."""
    if window.anchor is None:
        return window
    times = sorted(m.t_in for m in trace.messages if m.src in replicas and m.dst in replicas)

    def count(t0: float, t1: float) -> int:
        return bisect.bisect_right(times, t1) - bisect.bisect_left(times, t0)

    before, after = window.anchor - window.t0, window.t1 - window.anchor
    k = 1.0
    while count(window.anchor - before * k, window.anchor + after * k) > READABLE_FRAMES:
        if (before + after) * k * 0.8 < 0.04:
            break
        k *= 0.8
    if k == 1.0:
        return window
    why = window.why + ", narrowed to stay readable"
    return Window(window.anchor - before * k, window.anchor + after * k, why, window.anchor)


def violation_window(run: RunData, v: Violation, what: str = "the first violation") -> Window:
    """Around violation `v`, taking in the fault that preceded it (within 3 s)."""
    before = [f for f in run.faults if f.start <= v.t and v.t - f.start <= 3.0]
    t0 = min([v.t - 0.5] + [f.start - 0.2 for f in before[-1:]])
    why = f"around {what} ({v.kind})"
    if not any(f.start <= v.t for f in run.faults):
        # Said on the caption, or a reader looks for the partition in a picture of the
        # start (a naive follower whose leader came up late under load promotes itself).
        why += ", before any fault"
    return Window(max(t0, run.t0 - 0.2), v.t + 0.3, why, v.t)


def choose_window(run: RunData) -> Window:
    if run.violations:
        return violation_window(run, run.violations[0])
    if run.faults:
        f = run.faults[0]
        # Up to the first new leader and the first step-down after it (what the fault
        # caused), not every fruitless election a cut-off node keeps starting.
        after = sorted(
            (t, kind)
            for line in run.nodes.values()
            for t, kind, _ in line.marks
            if f.start < t <= f.start + 3
        )
        firsts = [
            next((t for t, k in after if k == want), None)
            for want in ("became_leader", "stepped_down", "became_follower")
        ]
        found = [t for t in firsts if t is not None]
        t1 = max(found) + 0.3 if found else f.start + 1.0
        return Window(f.start - 0.25, t1, f"around the first fault (F{f.n} {f.label})", f.start)
    return Window(run.t0, min(run.t_end, run.t0 + 1.0), "the first second (no fault, no violation)")


def _lane_of(name: str, replicas: set[str]) -> str:
    if name in replicas:
        return name
    if name == BROKER:
        return BROKER
    return CLIENTS


def evidence_times(v: Violation) -> list[float]:
    out: list[float] = []

    def walk(x: Any, key: str = "") -> None:
        if isinstance(x, dict):
            for k, y in x.items():
                walk(y, str(k))
        elif isinstance(x, list):
            if key == "overlap":
                out.extend(float(y) for y in x if isinstance(y, (int, float)))
            else:
                for y in x:
                    walk(y, key)
        elif key in TIME_KEYS and isinstance(x, (int, float)) and not isinstance(x, bool):
            out.append(float(x))

    walk(v.evidence)
    out.append(v.t)
    return out


def _evidence_message(m: Message, v: Violation | None) -> bool:
    """A message that carries the violation's (view, sequence number): the pre-prepares,
    prepares and commits of a PBFT slot two replicas decided differently."""
    if v is None:
        return False
    ev = v.evidence
    seq = ev.get("seq", ev.get("index"))
    if not isinstance(seq, int) or "seq" not in m.fields or m.fields["seq"] != seq:
        return False
    for key in ("view", "term"):
        if isinstance(ev.get(key), int) and key in m.fields and m.fields[key] != ev[key]:
            return False
    return True


def spacetime_figure(
    run: RunData, trace: Trace | None, window: Window
) -> tuple[Figure, dict[str, Any]]:
    """The diagram and a few numbers for the page (frames drawn, by fate, left out)."""
    replicas = set(run.replicas)
    msgs = (
        []
        if trace is None
        else [
            m
            for m in trace.messages
            if (window.t0 <= m.t_in <= window.t1)
            or (m.t_out is not None and window.t0 <= m.t_out <= window.t1)
        ]
    )
    hidden = 0
    if len(msgs) > CLIENT_FRAMES:
        kept = [m for m in msgs if m.src in replicas and m.dst in replicas]
        hidden, msgs = len(msgs) - len(kept), kept
    used = {_lane_of(m.src, replicas) for m in msgs} | {_lane_of(m.dst, replicas) for m in msgs}
    lanes = (
        ([CLIENTS] if CLIENTS in used else [])
        + list(run.replicas)
        + ([BROKER] if BROKER in used else [])
    )
    if not lanes:  # a record without its node list (a lab that died while starting)
        lanes = ["(no nodes)"]
    x = {name: i for i, name in enumerate(lanes)}
    span = window.t1 - window.t0
    height = min(16.0, max(7.0, 4.0 + len(msgs) / 60))
    fig = Figure(figsize=(max(7.0, 2.2 + 2.0 * len(lanes)), height), layout="constrained")
    ax = fig.add_subplot()
    rel = run.rel

    # Lanes, with paused/killed stretches drawn as a broken lane.
    for name in lanes:
        ax.plot([x[name]] * 2, [rel(window.t0), rel(window.t1)], color="#444", lw=1.2, zorder=1)
        line = run.nodes.get(name)
        for s, e, what in line.down if line else []:
            s, e = max(s, window.t0), min(e, window.t1)
            if s < e:
                ax.plot([x[name]] * 2, [rel(s), rel(e)], color="#fff", lw=3, zorder=2)
                ax.plot(
                    [x[name]] * 2,
                    [rel(s), rel(e)],
                    color="#888",
                    lw=6,
                    alpha=0.35,
                    zorder=2,
                    solid_capstyle="butt",
                )
                ax.text(x[name] + 0.04, rel(s), f"{what}", fontsize=7, color="#555", va="top")

    # Leases beside each lane as the node believed them (true time), overlaps in red.
    lease_label = False
    for name in run.replicas:
        for s, e in run.nodes[name].leases:
            s, e = max(s, window.t0), min(e, window.t1)
            if s < e:
                ax.plot(
                    [x[name] + 0.06] * 2,
                    [rel(s), rel(e)],
                    color="#52b788",
                    lw=4,
                    alpha=0.8,
                    solid_capstyle="butt",
                    zorder=2,
                )
                if not lease_label:
                    ax.text(
                        x[name] + 0.1,
                        rel(s),
                        "lease",
                        fontsize=7,
                        color="#2d6a4f",
                        va="top",
                        zorder=9,
                    )
                    lease_label = True
    for s, e, a, b in lease_overlaps(run.nodes):
        s, e = max(s, window.t0), min(e, window.t1)
        if s < e:
            for who in (a, b):
                ax.plot(
                    [x[who] + 0.06] * 2,
                    [rel(s), rel(e)],
                    color=VIOLATION_COLOR,
                    lw=4,
                    solid_capstyle="butt",
                    zorder=3,
                )
            ax.text(
                x[b] + 0.1,
                rel(s),
                f"{a} and {b} both hold a lease",
                fontsize=7.5,
                color=VIOLATION_COLOR,
                va="top",
                fontweight="bold",
                zorder=9,
            )

    # Faults as bands across the lanes.
    for band in run.faults:
        s, e = max(band.start, window.t0), min(band.end, window.t1)
        if s >= e:
            continue
        ax.axhspan(rel(s), rel(e), color=fault_color(band), alpha=0.12, lw=0, zorder=0)
        if band.start >= window.t0:
            ax.axhline(rel(band.start), color=fault_color(band), lw=1.2, zorder=1)
            ax.text(
                -0.45,
                rel(band.start),
                f"F{band.n} {band.label}",
                fontsize=8,
                va="bottom",
                ha="left",
                color="#333",
                fontweight="bold",
                bbox={"fc": "white", "ec": fault_color(band), "lw": 0.8, "pad": 1.5},
            )
        else:  # in force since before the window: say so at its top
            ax.text(
                -0.45,
                rel(window.t0),
                f"F{band.n} {band.label} (since {rel(band.start):.2f} s)",
                fontsize=7.5,
                va="top",
                ha="left",
                color="#333",
                bbox={"fc": "white", "ec": fault_color(band), "lw": 0.8, "pad": 1.5},
                zorder=9,
            )
        if band.end <= window.t1 and band.healed:
            ax.axhline(rel(band.end), color=fault_color(band), lw=1.0, ls=":", zorder=1)
            ax.text(
                -0.45,
                rel(band.end),
                f"F{band.n} healed",
                fontsize=7.5,
                va="bottom",
                ha="left",
                color="#333",
            )

    first_v = next((v for v in run.violations if window.t0 <= v.t <= window.t1), None)
    types = Counter(
        m.type
        for m in msgs
        if _lane_of(m.src, replicas) in replicas and _lane_of(m.dst, replicas) in replicas
    )
    palette = {t: TYPE_COLORS[i % len(TYPE_COLORS)] for i, (t, _) in enumerate(types.most_common())}

    # Arrows. quiver draws thousands in one artist; crosses for the frames that never arrived.
    qx, qy, qu, qv, qc, qw = [], [], [], [], [], []
    lost_x, lost_y, lost_seg = [], [], []
    ev_x, ev_y = [], []
    labels: list[tuple[float, float, str, Any, str]] = []
    # A label for the first frame of each (link, type, arrived or not) in each stretch
    # between fault boundaries: "Heartbeat" once, then "Heartbeat ✗ dropped" once the cut
    # starts, and again once it heals.
    boundaries = sorted({t for f in run.faults for t in (f.start, f.end)})
    labelled: set[tuple[str, str, str, bool, int]] = set()
    fates: Counter[str] = Counter()
    for m in sorted(msgs, key=lambda m: m.t_in):
        a, b = _lane_of(m.src, replicas), _lane_of(m.dst, replicas)
        if a == b:
            continue  # an endpoint talking to itself (clients lane, barriers)
        fates[m.fate] += 1
        client = a in (CLIENTS, BROKER) or b in (CLIENTS, BROKER)
        color = CLIENT_COLOR if client else palette.get(m.type, "#333")
        x0, x1, y0 = x[a], x[b], rel(m.t_in)
        arrived = m.t_out is not None
        if arrived:
            y1 = rel(m.t_out)
            qx.append(x0), qy.append(y0), qu.append(x1 - x0), qv.append(y1 - y0)
            qc.append(color), qw.append(0.6 if client else 1.0)
        else:
            # Ends a third of the way, so a cut r0 -> r2 does not look like it reached r1.
            xe, ye = x0 + 0.35 * (x1 - x0), y0 + 0.012 * span
            lost_seg.append(((x0, y0), (xe, ye)))
            lost_x.append(xe), lost_y.append(ye)
        if _evidence_message(m, first_v):
            ev_x.append(x0 + 0.5 * (x1 - x0)), ev_y.append(y0)
            if len(ev_x) <= 24:  # the evidence always says what it is
                fields = " ".join(f"{k}={v}" for k, v in m.fields.items() if k in ("view", "seq"))
                labels.append(
                    (x0 + 0.5 * (x1 - x0), y0, f"{m.type} {fields}", VIOLATION_COLOR, "top")
                )
                continue
        era = sum(1 for b in boundaries if b <= m.t_in)
        # Client traffic: one label per type in the window (it is the backdrop, not the story).
        key = ("", "", m.type, arrived, 0) if client else (a, b, m.type, arrived, era)
        if key not in labelled and len(labels) < MAX_LABELS:
            labelled.add(key)
            if m.type != "?":
                word = m.type + ("" if arrived else f" ✗ {m.fate}")
                if m.count > 1:
                    word += f" x{m.count}"
                t_field = next(
                    (f"{k[0]}{v}" for k, v in m.fields.items() if k in ("term", "view", "ballot")),
                    "",
                )
                if t_field:
                    word += f" ({t_field})"
                frac = 0.5 if arrived else 0.25
                c = "#666" if client else color
                # Neighbours' labels above their arrow, farther lanes' below, so r0 -> r1 and
                # r0 -> r2 sent together do not write over each other.
                va = "bottom" if abs(x1 - x0) <= 1 else "top"
                labels.append(
                    (x0 + frac * (x1 - x0), y0, word, c if arrived else VIOLATION_COLOR, va)
                )
    if qx:
        ax.quiver(
            qx,
            qy,
            qu,
            qv,
            angles="xy",
            scale_units="xy",
            scale=1,
            color=qc,
            width=0.0018,
            headwidth=5,
            headlength=6,
            headaxislength=5,
            zorder=3,
        )
    if lost_seg:
        from matplotlib.collections import LineCollection

        ax.add_collection(
            LineCollection(lost_seg, colors=VIOLATION_COLOR, linewidths=0.8, alpha=0.7, zorder=3)
        )
        ax.scatter(
            lost_x, lost_y, marker="x", s=22, color=VIOLATION_COLOR, linewidths=1.2, zorder=4
        )
    if ev_x:
        ax.scatter(
            ev_x,
            ev_y,
            s=90,
            facecolors="none",
            edgecolors=VIOLATION_COLOR,
            linewidths=1.6,
            zorder=6,
            label="evidence",
        )
    for lx, ly, word, c, va in labels:
        ax.text(
            lx,
            ly,
            word,
            fontsize=6.5,
            color=c,
            ha="center",
            va=va,
            zorder=7,
            bbox={"fc": "white", "ec": "none", "alpha": 0.75, "pad": 0.3},
        )

    # Role changes on the lanes; the evidence's ones ringed.
    ev_times = evidence_times(first_v) if first_v else []
    for name in run.replicas:
        for t, kind, label in run.nodes[name].marks:
            if not window.t0 <= t <= window.t1:
                continue
            marker = {"became_leader": "*", "became_candidate": "D"}.get(kind, "v")
            size = 13 if kind == "became_leader" else 7
            hit = any(abs(t - et) < 1e-6 for et in ev_times) and name in (
                first_v.nodes if first_v else []
            )
            ax.plot(
                [x[name]],
                [rel(t)],
                marker=marker,
                ms=size,
                color="#ffd166" if marker == "*" else "#f77f00",
                mec=VIOLATION_COLOR if hit else "#1d4e89",
                mew=2.0 if hit else 0.8,
                zorder=8,
            )
            ax.text(
                x[name] + 0.08,
                rel(t),
                label,
                fontsize=8,
                va="center",
                ha="left",
                zorder=9,
                color=VIOLATION_COLOR if hit else "#111",
                fontweight="bold" if hit else "normal",
                bbox={"fc": "white", "ec": "none", "alpha": 0.8, "pad": 0.5},
            )

    letters = {kind: letter for letter, kind, _ in violation_marks(run)}
    shown: set[str] = set()
    label_ys: list[float] = []
    for v in run.violations:
        if not window.t0 <= v.t <= window.t1 or v.kind in shown:
            continue
        shown.add(v.kind)
        ax.axhline(rel(v.t), color=VIOLATION_COLOR, lw=1.3, ls="--", zorder=5)
        y = rel(v.t)
        while any(abs(y - other) < 0.018 * span for other in label_ys):
            y += 0.018 * span  # two kinds found together: stack their labels
        label_ys.append(y)
        ax.text(
            -0.45,
            y,
            textwrap.fill(f"{letters.get(v.kind, '')} {v.kind}: {v.detail}", 75),
            fontsize=8,
            color=VIOLATION_COLOR,
            ha="left",
            va="top",
            fontweight="bold",
            zorder=9,
            bbox={"fc": "white", "ec": VIOLATION_COLOR, "lw": 0.8, "pad": 1.5},
        )

    ax.set_xlim(-0.5, len(lanes) - 0.5)
    ax.set_ylim(rel(window.t1), rel(window.t0))  # time goes down
    # Each lane is named with the role in force when the window opens (a leader from
    # before the window is a leader all the same).
    word = run.term_word
    names = []
    for name in lanes:
        line = run.nodes.get(name)
        at = next((r for r in (line.roles if line else []) if r[0] <= window.t0 < r[1]), None)
        if at is not None:
            names.append(f"{name}\n{at[2]}" + (f", {word} {at[3]}" if at[3] is not None else ""))
        else:
            names.append(name)
    ax.set_xticks(range(len(lanes)), names)
    ax.xaxis.tick_top()
    ax.set_ylabel("seconds since the lab was ready")
    for side in ("right", "bottom"):
        ax.spines[side].set_visible(False)
    ax.grid(True, axis="y", color="#eee", lw=0.5)
    drawn = sum(fates.values())
    title = (
        f"Space-time diagram {rel(window.t0):.2f}-{rel(window.t1):.2f} s, {window.why}: "
        f"{drawn} frames" + (f" ({hidden} client/broker frames not drawn)" if hidden else "")
    )
    ax.set_title(title, fontsize=10, loc="left", pad=22)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, lw=2, label=t) for t, c in palette.items()][:12]
    handles.append(Line2D([], [], color=VIOLATION_COLOR, marker="x", lw=0.8, label="never arrived"))
    if CLIENTS in used or BROKER in used:
        handles.append(Line2D([], [], color=CLIENT_COLOR, lw=2, label="client/broker traffic"))
    ax.legend(
        handles=handles, loc="lower left", bbox_to_anchor=(1.0, 0.0), fontsize=7.5, frameon=False
    )
    info = {
        "frames": drawn,
        "fates": dict(fates),
        "window": (rel(window.t0), rel(window.t1)),
        "why": window.why,
        "trace_missing": trace is None,
        "clients_hidden": hidden,
    }
    return fig, info
