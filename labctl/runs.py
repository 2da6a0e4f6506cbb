"""Run records on disk: finding, listing and pruning `<lab-dir>/runs/*`, the `latest` link,
and the conversion of a run's true time (the machine's monotonic clock) to wall-clock time.

A run directory is a run record when it holds events.jsonl. `runs/latest` is a symlink to
the newest run, updated by the supervisor when a run starts; anything that takes a run
accepts a path, a run's name under runs/, or `latest`.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
from pathlib import Path
from typing import Any

from labctl import labdir
from labctl.errors import LabError

LATEST = "latest"


def runs_root(lab_dir: str | Path | None) -> Path:
    return labdir.resolve(lab_dir) / "runs"


def is_run(path: Path) -> bool:
    return (path / "events.jsonl").is_file()


def all_runs(lab_dir: str | Path | None) -> list[Path]:
    """Every run record under the lab dir, oldest first (names start with their time)."""
    root = runs_root(lab_dir)
    try:
        entries = [p for p in root.iterdir() if p.name != LATEST and not p.is_symlink()]
    except FileNotFoundError:
        return []
    return sorted((p for p in entries if is_run(p)), key=lambda p: (_started(p), p.name))


def _started(path: Path) -> float:
    try:
        return float(json.loads((path / "lab.json").read_text()).get("started_wall", 0.0))
    except (OSError, ValueError, AttributeError):
        return path.stat().st_mtime


def find_run(run: str, lab_dir: str | Path | None) -> Path:
    """A run directory from a path, a run name under runs/, or `latest` (LabError if none)."""
    candidates = [Path(run)]
    if run == LATEST:
        runs = all_runs(lab_dir)
        if not runs:
            raise LabError(f"no runs in {runs_root(lab_dir)} yet (start one with `labctl up`)")
        candidates = [runs[-1]]
    elif os.sep not in run:
        candidates.append(runs_root(lab_dir) / run)
    for path in candidates:
        if is_run(path):
            return path.resolve()
    raise LabError(f"{run}: not a run directory (no events.jsonl; `labctl runs list` has them)")


def link_latest(run_dir: Path) -> None:
    """Point runs/latest at `run_dir` (atomically: a reader sees the old or the new run)."""
    link = run_dir.parent / LATEST
    tmp = run_dir.parent / f".{LATEST}.{os.getpid()}"
    try:
        if tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(run_dir.name)
        os.replace(tmp, link)
    except OSError:
        pass  # a file system without symlinks: `latest` is still found by its start time


def size_of(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def describe(path: Path) -> dict[str, Any]:
    """One row of `labctl runs list`."""
    lab: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    try:
        lab = json.loads((path / "lab.json").read_text())
    except (OSError, ValueError):
        pass
    try:
        summary = json.loads((path / "summary.json").read_text())
    except (OSError, ValueError):
        pass
    config = lab.get("config") or {}
    started = lab.get("started_wall")
    return {
        "name": path.name,
        "path": str(path),
        "protocol": config.get("protocol"),
        "nodes": config.get("nodes"),
        "started": _iso(started) if isinstance(started, (int, float)) else None,
        "duration": summary.get("duration", summary.get("duration_s")),
        "finished": bool(summary),
        "violations": len(summary.get("violations") or []) if summary else None,
        "bytes": size_of(path),
    }


def prune(lab_dir: str | Path | None, keep: int) -> list[Path]:
    """Delete all but the newest `keep` finished runs; the run of a lab that is running
    now is never deleted. Returns what was deleted."""
    if keep < 0:
        raise LabError(f"--keep must not be negative, got {keep}")
    runs = all_runs(lab_dir)
    state = labdir.read_state(labdir.resolve(lab_dir))
    live = Path(state["run_dir"]).resolve() if state and state.get("run_dir") else None
    doomed = [p for p in runs[: max(0, len(runs) - keep)] if p.resolve() != live]
    for p in doomed:
        shutil.rmtree(p, ignore_errors=True)
    latest = runs_root(lab_dir) / LATEST
    if latest.is_symlink() and not latest.exists():
        remaining = all_runs(lab_dir)
        if remaining:
            link_latest(remaining[-1])
        else:
            latest.unlink()
    return doomed


class Clock:
    """A run's true time <-> wall-clock time, from the pair of readings lab.json keeps
    (`clock`: monotonic and wall time read together when the run started)."""

    def __init__(self, run_dir: Path) -> None:
        try:
            lab = json.loads((run_dir / "lab.json").read_text())
        except (OSError, ValueError) as e:
            raise LabError(f"{run_dir}: no readable lab.json ({e})") from None
        anchor = lab.get("clock")
        if not isinstance(anchor, dict):
            raise LabError(f"{run_dir}: lab.json has no clock anchor (a run from before it)")
        self.offset = float(anchor["wall"]) - float(anchor["monotonic"])

    def wall(self, t: float) -> float:
        """Seconds since the epoch for a true time `t` from events or history."""
        return t + self.offset

    def iso(self, t: float) -> str:
        return _iso(self.wall(t))


def _iso(wall: float) -> str:
    return datetime.datetime.fromtimestamp(wall).astimezone().isoformat(timespec="milliseconds")
