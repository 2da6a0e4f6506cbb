"""Checker memory and CPU over a long run: a run record replayed through a CheckerSet.

    python -m labctl.benchmarks.checker_memory RUN_DIR [--ops N] [--online-every K]

Events and history records are merged by time (roughly what the supervisor sees live;
each file keeps its own order) and fed as the supervisor feeds them, with the live
linearizability search every K completed operations. Reports the checkers' traced
memory (tracemalloc) every 20,000 operations, so growth per operation can be read off,
and, in a second pass without tracemalloc, the CPU per operation. Issue 14: a Raft soak
record (`LABCTL_BENCH_KEEP=1 labctl bench soak`) is the input it was written for.
"""

from __future__ import annotations

import argparse
import heapq
import json
import time
import tracemalloc
from pathlib import Path
from typing import Any

from labctl.checkers.base import CheckerConfig
from labctl.checkers.runner import CheckerSet, _lab_config, read_jsonl

MARK_EVERY = 20_000


def _records(run: Path, limit: int) -> list[tuple[int, dict[str, Any]]]:
    ev = ((r.get("t", 0), 0, r) for r in read_jsonl(run / "events.jsonl") if r)
    hi = ((r.get("t", 0), 1, r) for r in read_jsonl(run / "history.jsonl") if r)
    out, ops = [], 0
    for _, which, rec in heapq.merge(ev, hi, key=lambda x: x[0]):
        out.append((which, rec))
        if which and rec.get("type") != "invoke":
            ops += 1
            if ops >= limit:
                break
    return out


def _replay(config: CheckerConfig, records: list[tuple[int, dict[str, Any]]], every: int,
            trace: bool) -> dict[str, Any]:  # fmt: skip
    checkers = CheckerSet(config)
    marks, ops = [], 0
    if trace:
        tracemalloc.start()
    t0 = time.process_time()
    for which, rec in records:
        if not which:
            checkers.on_event(dict(rec))
            continue
        checkers.on_history(dict(rec))
        if rec.get("type") == "invoke":
            continue
        ops += 1
        if ops % every == 0:
            checkers.check_online()
        if trace and ops % MARK_EVERY == 0:
            marks.append((ops, round(tracemalloc.get_traced_memory()[0] / 1e6, 1)))
    cpu = time.process_time() - t0
    if trace:
        tracemalloc.stop()
    checkers.finish()
    out: dict[str, Any] = {"ops": ops, "violations": len(checkers.violations)}
    if trace:
        out["traced_mb_by_ops"] = marks
        if len(marks) >= 2:
            (o0, m0), (o1, m1) = marks[0], marks[-1]
            out["bytes_per_op"] = round((m1 - m0) * 1e6 / max(o1 - o0, 1))
    else:
        out["cpu_us_per_op"] = round(1e6 * cpu / max(ops, 1), 1)
    return out


def run(run_dir: str | Path, ops: int = 100_000, online_every: int = 250) -> dict[str, Any]:
    root = Path(run_dir)
    config = CheckerConfig.from_lab(
        _lab_config(root / "lab.json"), lin_wall_clock=False, lin_seconds=None
    )
    records = _records(root, ops)
    return {
        "run_dir": str(root),
        "memory": _replay(config, records, online_every, trace=True),
        "cpu": _replay(config, records, online_every, trace=False),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--ops", type=int, default=100_000)
    parser.add_argument("--online-every", type=int, default=250)
    args = parser.parse_args()
    print(json.dumps(run(args.run_dir, args.ops, args.online_every)))
