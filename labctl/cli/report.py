"""`labctl report RUN|latest [--open] [--window T0:T1]`: pictures of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from labctl.cli.common import LabDir, say
from labctl.errors import LabError


def find_run(run: str, lab_dir: str | None) -> Path:
    """A run directory from a path, a run's name under <lab-dir>/runs/, or `latest`.

    One small function so it merges with labctl.runs.find_run (helper "firsthour"), which
    resolves the same three forms; once that lands this should call it."""
    from labctl import labdir

    runs = labdir.resolve(lab_dir) / "runs"
    if run == "latest":
        found = sorted(
            (p for p in runs.glob("*") if (p / "events.jsonl").is_file() and not p.is_symlink()),
            key=lambda p: p.name,  # names start with the run's start time
        )
        if not found:
            raise LabError(f"no runs in {runs} yet (start one with `labctl up` or a scenario)")
        return found[-1]
    for path in (Path(run), runs / run):
        if (path / "events.jsonl").is_file():
            return path.resolve()
    raise LabError(f"{run}: not a run directory (no events.jsonl here or under {runs})")


def parse_window(text: str) -> tuple[float, float]:
    """'1.5:3' or '1500ms:3s' -> (1.5, 3.0), seconds since the run started."""
    from protocols.base import DurationError, parse_duration

    start, sep, end = text.partition(":")
    if not sep:
        raise LabError(f"--window wants T0:T1 (seconds since the start, e.g. 1.5:3), got {text!r}")
    try:
        t0, t1 = parse_duration(start.strip() or "0"), parse_duration(end.strip())
    except DurationError as e:
        raise LabError(f"--window {text!r}: {e}") from None
    if not t0 < t1:
        raise LabError(f"--window {text!r}: the start must come before the end")
    return t0, t1


def report(
    run: Annotated[
        str, typer.Argument(metavar="RUN", help="A run directory, a run's name, or latest.")
    ],
    open_: Annotated[bool, typer.Option("--open", help="Open the page in a browser.")] = False,
    window: Annotated[
        str | None,
        typer.Option("--window", help="Space-time diagram window T0:T1, seconds since start."),
    ] = None,
    lab_dir: LabDir = None,
) -> None:
    """Write RUN/report.html: verdict, rates, latency, timelines, violations, a space-time
    diagram (and the figures as PNG beside it). Needs matplotlib (the "report" extra)."""
    from labctl import report as rep

    path = find_run(run, lab_dir)
    win = parse_window(window) if window is not None else None
    if not rep.available():
        raise LabError(f"the report needs matplotlib: {rep.INSTALL_HINT}")
    try:
        out = rep.write_report(path, win)
    except ValueError as e:
        raise LabError(f"{path}: {e}") from None
    typer.echo(str(out))
    say("figures: " + ", ".join(f"report-{n}.png" for n in rep.FIGURES) + f" in {path}")
    if open_:
        import webbrowser

        if not webbrowser.open(out.as_uri()):
            say(f"no browser found here: open {out} yourself")
