"""`labctl runs list|prune|events`: the run records in the lab dir (labctl/runs.py)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from labctl.cli.common import Json, LabDir, print_json, say

app = typer.Typer(help="List, prune and read run records (<lab-dir>/runs/).", no_args_is_help=True)

Run = Annotated[
    str, typer.Argument(metavar="RUN", help="A run directory, a run's name, or latest.")
]


@app.command("list")
def list_runs(json_out: Json = False, lab_dir: LabDir = None) -> None:
    """Every run record, oldest first, with its size."""
    from labctl.runs import all_runs, describe, human_size, runs_root

    rows = [describe(p) for p in all_runs(lab_dir)]
    if json_out:
        print_json(rows)
        return
    if not rows:
        say(f"no runs in {runs_root(lab_dir)}")
        return
    for r in rows:
        verdict = "running" if not r["finished"] else (
            "safe" if not r["violations"] else f"{r['violations']} violations")  # fmt: skip
        took = f"{r['duration']:.0f}s" if isinstance(r["duration"], (int, float)) else "-"
        typer.echo(f"{r['name']:<40} {human_size(r['bytes']):>9}  {took:>6}  {verdict}")
    total = sum(r["bytes"] for r in rows)
    say(f"{len(rows)} runs, {human_size(total)} in {runs_root(lab_dir)}")


@app.command("prune")
def prune_runs(
    keep: Annotated[int, typer.Option("--keep", metavar="N", help="How many newest to keep.")] = 10,
    json_out: Json = False,
    lab_dir: LabDir = None,
) -> None:
    """Delete all but the newest N runs (a running lab's run is kept)."""
    from labctl.runs import all_runs, human_size, prune, size_of

    sizes = {p: size_of(p) for p in all_runs(lab_dir)}
    gone = prune(lab_dir, keep)
    freed = sum(sizes.get(p, 0) for p in gone)
    if json_out:
        print_json({"deleted": [p.name for p in gone], "bytes_freed": freed})
        return
    for p in gone:
        typer.echo(f"deleted {p.name} ({human_size(sizes.get(p, 0))})")
    say(f"{len(gone)} runs deleted, {human_size(freed)} freed; {len(sizes) - len(gone)} kept")


@app.command("events")
def events(
    run: Run = "latest",
    kind: Annotated[
        list[str] | None,
        typer.Option("--kind", metavar="KIND", help="Only these kinds (repeatable)."),
    ] = None,
    json_out: Json = False,
    lab_dir: LabDir = None,
) -> None:
    """A run's events with wall-clock times, to line up with your logs.

    With --json one JSON object per line, with "wall" added."""
    from labctl.runs import Clock, find_run

    path = find_run(run, lab_dir)
    clock = Clock(path)
    wanted = set(kind or [])
    with open(path / "events.jsonl") as f:
        for line in f:
            try:
                e = json.loads(line)
                t = float(e["t"])
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line of a run that crashed
            if wanted and e.get("kind") not in wanted:
                continue
            if json_out:
                sys.stdout.write(json.dumps({"wall": clock.iso(t), **e}) + "\n")
                continue
            rest = {k: v for k, v in e.items() if k not in ("t", "src", "kind")}
            detail = " ".join(f"{k}={json.dumps(v)}" for k, v in rest.items())
            typer.echo(f"{clock.iso(t)} {e.get('src', '?'):<10} {e.get('kind')} {detail}")
