"""`labctl report`: pictures of a run, written into its run directory.

    write_report(run_dir, window=None) -> Path of RUN/report.html

The page (page.py) holds every figure inline; the same figures are written beside it as
PNG files (report-rate.png, report-latency.png, report-timelines.png,
report-spacetime.png) for issues and chat. data.py folds the run record, figures.py draws
the time plots, spacetime.py the Lamport diagram from the message trace (faults/trace.py).

matplotlib is an optional dependency (`pip install 'labctl[report]'`); it is imported only
here, so nothing else in the CLI pays for it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

INSTALL_HINT = "pip install 'labctl[report]' (or: pip install matplotlib)"
FIGURES = ("rate", "latency", "timelines", "spacetime")


class ReportUnavailable(RuntimeError):
    """matplotlib is not installed."""


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_report(
    run_dir: Path | str, window: tuple[float, float] | None = None, dpi: int = 100
) -> Path:
    """Write RUN/report.html and the PNGs; `window` is (t0, t1) in seconds since the run
    started. Raises ReportUnavailable without matplotlib, ValueError for a bad window."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
    except ImportError:
        raise ReportUnavailable(f"the report needs matplotlib: {INSTALL_HINT}") from None
    from faults import trace as tr
    from labctl.report import figures, page, spacetime
    from labctl.report.data import load_run

    root = Path(run_dir)
    if not (root / "events.jsonl").is_file():
        raise ValueError(f"{root}: not a run directory (no events.jsonl)")
    run = load_run(root)
    if window is not None:
        t0, t1 = window
        if not (t0 < t1):
            raise ValueError(f"--window: the start must come before the end, got {t0:g}:{t1:g}")
        win = spacetime.Window(run.t0 + t0, run.t0 + t1, "the window asked for")
    else:
        win = spacetime.choose_window(run)
    trace = None
    trace_info: dict[str, Any] = {"missing": True}
    if tr.exists(root):
        # Only the window's frames become Messages: a 200,000-frame trace stays cheap.
        try:
            trace = tr.read_trace(tr.trace_path(root), win.t0 - 1.0, win.t1)
        except ValueError as e:  # a damaged trace costs the arrows, not the page
            trace_info = {"missing": True, "error": str(e)}
        else:
            trace_info = {"kept": trace.kept, "not_kept": trace.not_kept, "torn": trace.torn}
            win = spacetime.narrow(win, trace, set(run.replicas))
    built = {
        "rate": figures.rate_figure(run),
        "latency": figures.latency_figure(run),
        "timelines": figures.timelines_figure(run),
    }
    st_fig, st_info = spacetime.spacetime_figure(run, trace, win)
    built["spacetime"] = st_fig
    pngs: dict[str, bytes] = {}
    for name, fig in built.items():
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        pngs[name] = buf.getvalue()
        (root / f"report-{name}.png").write_bytes(pngs[name])
    out = root / "report.html"
    tmp = root / "report.html.tmp"
    tmp.write_text(page.render(run, pngs, st_info, trace_info), encoding="utf-8")
    tmp.replace(out)
    return out
