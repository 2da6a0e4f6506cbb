"""The report's time figures (matplotlib): rate, latency, and the per-node timelines.

Every time axis is seconds since the run started and carries the same fault bands
(F1, F2... labelled with the fault vocabulary's words) and the same violation markers
(A, B... the first of each kind), so a reader can line a dip up with its cause across
figures. Figures are built with matplotlib's object API (no pyplot state), so building one
never touches a display.
"""

from __future__ import annotations

import math
from typing import Any

from matplotlib.figure import Figure
from matplotlib.patches import Patch

from labctl.report.data import FaultBand, RunData, lease_overlaps

OUTCOME_COLORS = {"ok": "#2a9d8f", "fail": "#d62828", "info": "#f4a261"}
FAULT_COLORS = ["#8e7dbe", "#e9c46a", "#90be6d", "#f28482", "#4d908e", "#f9844a", "#577590"]
DOWN_COLORS = {"paused": "#6c757d", "killed": "#000000"}
VIOLATION_COLOR = "#d62828"
WIDTH = 11.0  # inches; at 100 dpi the figures fit a laptop screen's page width


def fault_color(band: FaultBand) -> str:
    return FAULT_COLORS[(band.n - 1) % len(FAULT_COLORS)]


def violation_marks(run: RunData) -> list[tuple[str, str, float]]:
    """(letter, kind, first time) for each violation kind, in order of first occurrence."""
    first: dict[str, float] = {}
    for v in run.violations:
        first.setdefault(v.kind, v.t)
    return [(chr(ord("A") + i), kind, t) for i, (kind, t) in enumerate(first.items())][:26]


def draw_faults(ax: Any, run: RunData, labels: bool) -> None:
    """Every fault as a shaded band across the axis; with `labels`, its F-number and words
    at the top (staggered on three levels so neighbours do not overwrite each other)."""
    for band in run.faults:
        s, e = run.rel(band.start), run.rel(band.end)
        if e - s < 0.02:  # an instant (a restart): still visible
            e = s + 0.02
        ax.axvspan(s, e, color=fault_color(band), alpha=0.18, lw=0, zorder=0)
        ax.axvline(s, color=fault_color(band), lw=1.0, alpha=0.9, zorder=1)
        if labels:
            level = (band.n - 1) % 3
            ax.text(
                s,
                1.0 - 0.09 * level,
                f" F{band.n} {band.label}",
                transform=ax.get_xaxis_transform(),
                fontsize=7.5,
                va="top",
                ha="left",
                color="#333",
                zorder=5,
                bbox={
                    "boxstyle": "round,pad=0.15",
                    "fc": "white",
                    "ec": fault_color(band),
                    "alpha": 0.85,
                    "lw": 0.8,
                },
            )


def draw_violations(ax: Any, run: RunData, labels: bool) -> None:
    """The first violation of each kind as a dashed red line; with `labels`, its letter
    (staggered, since kinds often follow each other within milliseconds)."""
    for i, (letter, _, t) in enumerate(violation_marks(run)):
        ax.axvline(run.rel(t), color=VIOLATION_COLOR, lw=1.2, ls="--", zorder=4)
        if labels:
            ax.text(
                run.rel(t),
                0.03 + 0.11 * (i % 4),
                f" {letter}",
                transform=ax.get_xaxis_transform(),
                fontsize=8.5,
                color=VIOLATION_COLOR,
                va="bottom",
                ha="left",
                zorder=6,
                fontweight="bold",
                bbox={"fc": "white", "ec": "none", "alpha": 0.7, "pad": 0.5},
            )


def violation_legend(run: RunData) -> str:
    """'A split-brain x2 · B divergence x139', for a figure's title."""
    counts: dict[str, int] = {}
    for v in run.violations:
        counts[v.kind] = counts.get(v.kind, 0) + 1
    marks = violation_marks(run)
    if not marks:
        return ""
    return "\nviolations (the first of each kind, dashed red): " + " · ".join(
        f"{letter} {kind} x{counts[kind]}" for letter, kind, _ in marks
    )


def _time_axis(ax: Any, run: RunData) -> None:
    ax.set_xlim(0, max(run.rel(run.t_end), 0.1))
    ax.grid(True, axis="both", color="#e5e5e5", lw=0.6)
    ax.set_axisbelow(True)


def rate_figure(run: RunData) -> Figure:
    """Completed operations per second, ok / fail / info, in 250 ms bins."""
    fig = Figure(figsize=(WIDTH, 3.0), layout="constrained")
    ax = fig.add_subplot()
    span = max(run.rel(run.t_end), 0.25)
    width = 0.25 if span <= 60 else span / 240
    nbins = max(1, math.ceil(span / width))
    xs = [i * width for i in range(nbins)]
    for kind in ("ok", "fail", "info"):
        counts = [0] * nbins
        for t, _, _ in run.ops[kind]:
            i = int(run.rel(t) / width)
            if 0 <= i < nbins:
                counts[i] += 1
        if True:  # all three, so the legend says fail and info were looked for
            ax.step(
                xs,
                [c / width for c in counts],
                where="post",
                color=OUTCOME_COLORS[kind],
                lw=1.4,
                label=f"{kind} ({len(run.ops[kind])})",
            )
    _time_axis(ax, run)
    ax.set_ylim(bottom=0)
    ax.margins(y=0.35)
    draw_faults(ax, run, labels=True)
    draw_violations(ax, run, labels=True)
    ax.set_ylabel("ops/s completed")
    ax.set_xlabel("seconds since the lab was ready")
    ax.legend(loc="upper right", fontsize=8, framealpha=0.9)
    ax.set_title(
        f"Throughput (bins of {width * 1000:g} ms){violation_legend(run)}", fontsize=10, loc="left"
    )
    return fig


def latency_figure(run: RunData) -> Figure:
    """Every completed operation at its completion time and latency (Jepsen's latency-raw);
    fail and info are drawn over ok so the rare ones stay visible."""
    fig = Figure(figsize=(WIDTH, 3.2), layout="constrained")
    ax = fig.add_subplot()
    any_points = False
    for kind, marker, size in (("ok", "o", 4), ("fail", "x", 14), ("info", "^", 12)):
        pts = run.ops[kind]
        if not pts:
            continue
        any_points = True
        ax.scatter(
            [run.rel(t) for t, _, _ in pts],
            [max(lat, 0.01) for _, lat, _ in pts],
            s=size,
            marker=marker,
            color=OUTCOME_COLORS[kind],
            alpha=0.6 if kind == "ok" else 0.9,
            linewidths=0.8 if marker == "x" else 0,
            label=f"{kind} ({len(pts)})",
            rasterized=True,
        )
    _time_axis(ax, run)
    if any_points:
        from matplotlib.ticker import FuncFormatter, NullFormatter

        ax.set_yscale("log")
        from matplotlib.ticker import LogLocator

        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.legend(loc="upper right", fontsize=8, framealpha=0.9, markerscale=2)
    else:
        ax.text(0.5, 0.5, "no operations completed", transform=ax.transAxes, ha="center")
    draw_faults(ax, run, labels=True)
    draw_violations(ax, run, labels=True)
    ax.set_ylabel("latency (ms, log)")
    ax.set_xlabel("seconds since the lab was ready (at completion)")
    ax.set_title(
        "Latency of every operation (info = outcome unknown, e.g. timed out)"
        + violation_legend(run),
        fontsize=10,
        loc="left",
    )
    return fig


def timelines_figure(run: RunData) -> Figure:
    """Per node: role and term, paused/killed; leases in true time with overlaps; commit
    and applied index."""
    names = run.replicas
    n = max(len(names), 1)
    has_leases = any(run.nodes[nm].leases for nm in names)
    lease_h = 0.35 * n + 0.3 if has_leases else 0.25
    fig = Figure(figsize=(WIDTH, 1.6 + 0.85 * n + lease_h + 2.2), layout="constrained")
    gs = fig.add_gridspec(3, 1, height_ratios=[0.6 * n + 0.4, lease_h, 2.0])
    ax_role = fig.add_subplot(gs[0])
    ax_lease = fig.add_subplot(gs[1], sharex=ax_role)
    ax_idx = fig.add_subplot(gs[2], sharex=ax_role)
    rows = {name: i for i, name in enumerate(reversed(names))}
    word = run.term_word
    seen_roles: set[str] = set()
    for name in names:
        y = rows[name]
        line = run.nodes[name]
        for role in {r for _, _, r, _ in line.roles}:
            bars = [(run.rel(s), max(e - s, 1e-3)) for s, e, r, _ in line.roles if r == role]
            ax_role.broken_barh(
                bars, (y - 0.32, 0.64), color=run.role_colour(role), lw=0
            )
            seen_roles.add(role)
        # A label where the term changes; of labels closer than one label's width, the
        # later one (a term-0 instant before term 1 at start-up says nothing).
        changes: list[tuple[float, int]] = []
        for s, e, _, term in line.roles:
            if term is not None and e > s and (not changes or changes[-1][1] != term):
                changes.append((max(run.rel(s), 0.0), term))
        min_gap = 0.045 * max(run.rel(run.t_end), 0.1)
        for i, (x0, term) in enumerate(changes):
            if i + 1 < len(changes) and changes[i + 1][0] - x0 < min_gap:
                continue
            ax_role.text(
                x0,
                y + 0.36,
                f"{word} {term}",
                fontsize=6.5,
                va="bottom",
                ha="left",
                color="#222",
                clip_on=True,
            )
        for what in ("paused", "killed"):
            spans = [(run.rel(s), max(e - s, 1e-3)) for s, e, w in line.down if w == what]
            if spans:
                ax_role.broken_barh(
                    spans,
                    (y - 0.45, 0.9),
                    facecolor="none",
                    edgecolor=DOWN_COLORS[what],
                    hatch="////" if what == "paused" else "xxxx",
                    lw=0.8,
                )
                for s, _ in spans:
                    ax_role.text(
                        s, y - 0.45, f" {what}", fontsize=6.5, va="top", color=DOWN_COLORS[what]
                    )
        for t, kind, _ in line.marks:
            if kind == "became_leader":
                ax_role.plot(
                    [run.rel(t)],
                    [y],
                    marker="*",
                    ms=8,
                    color="#ffd166",
                    mec="#1d4e89",
                    mew=0.8,
                    zorder=5,
                )
    ax_role.set_yticks(list(rows.values()), list(rows.keys()))
    ax_role.set_ylim(-0.7, n - 0.2)
    ax_role.set_title(
        f"Per node: role and {word} (star: became leader; hatched: paused, "
        "crossed: killed)" + violation_legend(run),
        fontsize=10,
        loc="left",
    )
    handles = [Patch(color=run.role_colour(r), label=r) for r in sorted(seen_roles)]
    handles += [
        Patch(fc="none", ec=DOWN_COLORS[w], hatch=h, label=w)
        for w, h in (("paused", "////"), ("killed", "xxxx"))
    ]
    ax_role.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7.5, frameon=False
    )

    # Leases in true time: what each node believed, and where two believed at once.
    any_lease = False
    for name in names:
        y = rows[name]
        spans = [(run.rel(s), e - s) for s, e in run.nodes[name].leases]
        if spans:
            any_lease = True
            ax_lease.broken_barh(spans, (y - 0.3, 0.6), color="#52b788", lw=0)
    overlaps = lease_overlaps(run.nodes)
    for s, e, a, b in overlaps:
        for who in (a, b):
            ax_lease.broken_barh(
                [(run.rel(s), e - s)],
                (rows[who] - 0.42, 0.84),
                facecolor="#d6282840",
                edgecolor=VIOLATION_COLOR,
                lw=1.0,
            )
        ax_lease.axvspan(run.rel(s), run.rel(e), color=VIOLATION_COLOR, alpha=0.12, lw=0)
        ax_lease.text(
            run.rel(e),
            rows[a],
            f" {a}+{b} overlap {(e - s) * 1000:.0f} ms",
            fontsize=7.5,
            color=VIOLATION_COLOR,
            va="center",
            ha="left",
            fontweight="bold",
        )
    ax_lease.set_yticks(list(rows.values()), list(rows.keys()))
    ax_lease.set_ylim(-0.6, n - 0.4)
    title = "Leases in true time (green: the node believes it holds one"
    title += f"; red: {len(overlaps)} overlaps)" if overlaps else "; no overlap)"
    if not any_lease:
        title = "Leases in true time: no node reported a lease in this run"
        ax_lease.set_yticks([])
    ax_lease.set_title(title, fontsize=10, loc="left")

    colors = ["#1d4e89", "#e76f51", "#2a9d8f", "#8e7dbe", "#f4a261", "#264653", "#e9c46a"]
    for i, name in enumerate(names):
        st = run.nodes[name].status
        if not st:
            continue
        c = colors[i % len(colors)]
        ts = [run.rel(t) for t, _, _ in st]
        ax_idx.step(
            ts, [x for _, x, _ in st], where="post", color=c, lw=1.3, label=f"{name} commit"
        )
        ax_idx.step(
            ts,
            [x for _, _, x in st],
            where="post",
            color=c,
            lw=1.0,
            ls=":",
            label=f"{name} applied",
        )
    ax_idx.set_ylabel("index")
    ax_idx.set_xlabel("seconds since the lab was ready")
    ax_idx.set_title("Commit (solid) and applied (dotted) index", fontsize=10, loc="left")
    if any(run.nodes[nm].status for nm in names):
        ax_idx.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7.5, frameon=False)
    for ax in (ax_role, ax_lease, ax_idx):
        _time_axis(ax, run)
        draw_faults(ax, run, labels=ax is ax_role)
        draw_violations(ax, run, labels=ax is ax_idx)
    ax_role.set_xlim(0, max(run.rel(run.t_end), 0.1))
    ax_role.grid(False, axis="y")
    ax_lease.grid(False, axis="y")
    return fig
