"""EPaxos soak: a long run at a fixed offered load, with RSS and WAL size over time.

    python bench/epaxos_soak.py [--minutes 30] [--rate 1000] [--every 30] [--keys 100]
        [--opt checkpoint_interval=2000]                  (prints JSON lines, then a table)

A 3-replica EPaxos lab, fsync on, through the router; three open-loop generators, one per
replica, together offering `--rate` puts/s over `--keys` keys. Every `--every` seconds one
line: elapsed time, load average, each replica's RSS (MB) and WAL size (MB), the lab dir's
size, instances held in memory, checkpoints taken, and the instances compacted. Bounded
means the RSS and WAL columns stop growing while `executed` keeps growing; without
checkpoints (`--opt checkpoint_interval=1000000000`) both grow with the run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from labctl.benchmarks.labs import all_running, bench_lab  # noqa: E402
from labctl.benchmarks.procs import Procs  # noqa: E402

MB = 1 / (1024 * 1024)


def _size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(root, f))
    return total


def sample(lab: Any, t0: float) -> dict[str, Any]:
    st = lab.status()
    run_dir = Path(lab.state["run_dir"])
    row: dict[str, Any] = {
        "t_s": round(time.monotonic() - t0),
        "load": os.getloadavg()[0],
        "rss_mb": {},
        "wal_mb": {},
    }
    for name, p in st["processes"].items():
        if not name.startswith("r") or not p.get("pid"):
            continue
        with contextlib.suppress(psutil.Error):
            row["rss_mb"][name] = round(psutil.Process(p["pid"]).memory_info().rss * MB, 1)
        row["wal_mb"][name] = round(_size(run_dir / "data" / name) * MB, 2)
    row["lab_dir_mb"] = round(_size(run_dir) * MB, 1)
    nodes = st["nodes"]
    row["instances"] = {n["id"]: n.get("log") for n in nodes}
    row["executed"] = {n["id"]: n.get("executed") for n in nodes}
    row["checkpoints"] = {n["id"]: n.get("checkpoints") for n in nodes}
    row["compacted"] = {n["id"]: n.get("compacted") for n in nodes}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--every", type=float, default=30.0)
    ap.add_argument("--keys", type=int, default=100)
    ap.add_argument("--opt", action="append", default=[], help="protocol option KEY=VALUE")
    a = ap.parse_args()
    options = dict(kv.split("=", 1) for kv in a.opt)
    duration = a.minutes * 60
    procs = Procs()
    rows = []
    after: dict[str, Any] = {}
    try:
        with bench_lab("epaxos", 3, True, "soak", after=after, options=options) as lab:
            ids = all_running(lab)
            start = time.monotonic() + 0.8
            gens = []
            for i, target in enumerate(ids):
                argv = ["-m", "labctl.benchmarks.loadgen", "--router", lab.state["router"],
                        "--name", f"c{i}", "--replicas", ",".join(ids), "--leader", target,
                        "--start-at", repr(start), "--warmup", "0", "--duration",
                        str(duration), "--grace", "2", "--parent-pid", str(os.getpid()),
                        "--mode", "open", "--rate", str(a.rate / len(ids)), "--op", "put",
                        "--inflight", "1000", "--timeout", "2", "--keys", str(a.keys)]  # fmt: skip
                gens.append(procs.spawn(argv, stdout=__import__("subprocess").PIPE))
            t0 = time.monotonic()
            while time.monotonic() - t0 < duration:
                time.sleep(min(a.every, max(0.0, duration - (time.monotonic() - t0))))
                row = sample(lab, t0)
                rows.append(row)
                print(json.dumps(row), flush=True)
            results = []
            for g in gens:
                out, _ = g.communicate(timeout=60)
                results.append(json.loads(out.decode().strip().splitlines()[-1]))
            rows.append(sample(lab, t0))
        ok = sum(r["ok"] for r in results)
        summary = {
            "minutes": a.minutes,
            "offered_per_s": a.rate,
            "committed_per_s": round(ok / duration, 1),
            "timeouts": sum(r["timeouts"] for r in results),
            "fail": sum(r["fail"] for r in results),
            "divergence": after.get("divergence"),
            "options": options,
        }
        print(json.dumps({"summary": summary}), flush=True)
        print(f"{'t_s':>6} {'load':>5} {'rss_mb max':>10} {'wal_mb max':>10} "
              f"{'lab_mb':>7} {'inst max':>8} {'executed':>9}")  # fmt: skip
        for r in rows:
            print(f"{r['t_s']:>6} {r['load']:>5.1f} {max(r['rss_mb'].values() or [0]):>10} "
                  f"{max(r['wal_mb'].values() or [0]):>10} {r['lab_dir_mb']:>7} "
                  f"{max(v or 0 for v in r['instances'].values()):>8} "
                  f"{max(v or 0 for v in r['executed'].values()):>9}")  # fmt: skip
    finally:
        procs.kill_all()


if __name__ == "__main__":
    main()
