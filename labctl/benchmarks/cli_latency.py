"""Wall time of one `labctl` call, as a script that injects faults pays it each time.

Runs the installed entry point (the `labctl` script next to this Python, else
`python -m labctl.cli.main`) against a 3-replica naive lab: `--help`, `--version`,
`protocols`, `status`, `fault delay` / `fault heal`, `fault list`; the median of N calls
each, its CPU time (user + system, which a busy machine inflates far less than the wall
time), and the machine's load average, since a figure measured on a busy machine is not an
idle one. The budget is 0.1 s per call on an idle machine.

    python -m labctl.benchmarks.cli_latency [--runs 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BUDGET_S = 0.1
CALLS: list[tuple[str, list[str]]] = [
    ("--help", ["--help"]),
    ("--version", ["--version"]),
    ("protocols", ["protocols"]),
    ("status", ["status"]),
    ("fault delay", ["fault", "delay", "--from", "r0", "--to", "r1", "--ms", "5"]),
    ("fault heal", ["fault", "heal"]),
    ("fault list", ["fault", "list"]),
]


def entry_point() -> list[str]:
    script = Path(sys.executable).with_name("labctl")
    if script.exists():
        return [str(script)]
    found = shutil.which("labctl")
    return [found] if found else [sys.executable, "-m", "labctl.cli.main"]


def _time(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system) of one call. On a busy machine the wall
    time is mostly waiting for a core; the CPU time is close to what an idle one takes."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run(runs: int = 10) -> dict[str, Any]:
    import protocols
    from labctl import api

    base = entry_point()
    load_before = os.getloadavg()
    out: dict[str, Any] = {"entry_point": base, "runs": runs, "budget_s": BUDGET_S}
    with tempfile.TemporaryDirectory(prefix="labctl-bench-cli-") as tmp:
        lab_dir = Path(tmp) / "lab"
        env = dict(os.environ, LABCTL_DIR=str(lab_dir))
        # A user's Python caches bytecode; without it every call compiles labctl's own
        # modules again (+15 ms), which measures the environment, not labctl.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        lab = api.up(lab_dir, api.lab_config(protocols.LIGHTEST, 3))
        try:
            calls: dict[str, Any] = {}
            for name, args in CALLS:
                _time(base + args, env)  # warm: the page cache, the protocols catalogue
                samples = [_time(base + args, env) for _ in range(runs)]
                xs = sorted(w for w, _ in samples)
                calls[name] = {
                    "median_s": round(statistics.median(xs), 4),
                    "min_s": round(xs[0], 4),
                    "max_s": round(xs[-1], 4),
                    "cpu_median_s": round(statistics.median(c for _, c in samples), 4),
                }
            out["calls"] = calls
        finally:
            lab.down()
    out["loadavg_before"] = [round(x, 2) for x in load_before]
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    out["cpus"] = os.cpu_count()
    return out


def render(result: dict[str, Any]) -> str:
    lines = [f"labctl call wall time, median of {result['runs']} (budget {BUDGET_S:g}s idle)"]
    for name, c in result["calls"].items():
        mark = "" if c["median_s"] <= BUDGET_S else "  over budget"
        med, lo, hi = (c[k] * 1000 for k in ("median_s", "min_s", "max_s"))
        cpu = c["cpu_median_s"] * 1000
        lines.append(f"  {name:<12} {med:6.1f} ms  (min {lo:.1f}, max {hi:.1f}; "
                     f"cpu {cpu:.1f} ms){mark}")  # fmt: skip
    lines.append(f"  load average before {result['loadavg_before']}, after "
                 f"{result['loadavg_after']} on {result['cpus']} cpus")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(prog="labctl.benchmarks.cli_latency")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    result = run(args.runs)
    print(json.dumps(result, indent=2) if args.json else render(result))


if __name__ == "__main__":
    main()
