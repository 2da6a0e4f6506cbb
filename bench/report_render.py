"""How long `labctl report` takes for a big run (goal: <= 5 s).

    .venv/bin/python bench/report_render.py [seconds ops frames] [rounds]

A run record of a 60 s naive run with 10,000 operations and 200,000 traced frames (by
default) is written with the lab's own writers (tests/report_helpers.py), then the report
is built `rounds` times (3) in fresh processes, each timed from start to finish, matplotlib's
import included, as `labctl report RUN` would spend. Prints one JSON object with the load.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.report_helpers import write_run  # noqa: E402


def main() -> None:
    args = [float(a) for a in sys.argv[1:]]
    seconds, ops, frames = (args + [60, 10_000, 200_000][len(args) :])[:3]
    rounds = int(args[3]) if len(args) > 3 else 3
    with tempfile.TemporaryDirectory(prefix="labctl-report-bench-") as tmp:
        run = write_run(Path(tmp) / "run", seconds, int(ops), int(frames))
        sizes = {p.name: p.stat().st_size for p in run.iterdir()}
        load0 = os.getloadavg()
        walls = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "labctl.cli.main", "report", str(run)],
                check=True, capture_output=True, cwd=ROOT,
            )  # fmt: skip
            walls.append(time.perf_counter() - t0)
        cpu = os.times()
        out = {
            "run": {"seconds": seconds, "ops": int(ops), "frames": int(frames), "bytes": sizes},
            "wall_s": {
                "median": round(statistics.median(walls), 2),
                "all": [round(w, 2) for w in walls],
            },
            "children_cpu_s_per_round": round(
                (cpu.children_user + cpu.children_system) / rounds, 2
            ),
            "goal_s": 5.0,
            "load_before": load0,
            "load_after": os.getloadavg(),
            "cpus": os.cpu_count(),
        }
        print(json.dumps(out))


if __name__ == "__main__":
    main()
