"""`labctl bench core`'s lifecycle figures: measured, never timed tests.

`core`: the fault router's added latency per hop (p50/p99) against a direct pyzmq hop
measured in the same run, its forwarding rate, and how long `labctl up -n 3` / `-n 9` take
until every replica reports ready, and `labctl down`. `external`: what the external-node
adapter adds per hop (labctl/benchmarks/external.py).
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import protocols
from labctl.children import python_command


def _cli(lab_dir: Path, *args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [*python_command(), "-m", "labctl.cli.main", *args, "--lab-dir", str(lab_dir)],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - t0


def lifecycle(nodes: int, rounds: int) -> dict[str, Any]:
    """Wall time of `labctl up -d` (returns once every replica is ready) and `labctl down`."""
    ups, downs = [], []
    with tempfile.TemporaryDirectory(prefix="labctl-bench-") as tmp:
        lab = Path(tmp) / "lab"
        for _ in range(rounds):
            ups.append(_cli(lab, "up", "-d", "-n", str(nodes), "-p", protocols.LIGHTEST))
            downs.append(_cli(lab, "down"))
    return {
        "nodes": nodes,
        "up_s": _stats(ups),
        "down_s": _stats(downs),
    }


def _stats(xs: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(xs), 3),
        "min": round(min(xs), 3),
        "max": round(max(xs), 3),
        "n": len(xs),
    }
