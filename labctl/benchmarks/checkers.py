"""Online checker overhead: supervisor CPU with the checkers on vs off, same load.

A naive lab of 3 replicas takes a kv workload at `rate` ops/s for `seconds`; the
supervisor's CPU time over that window is read from psutil. Also reports how long after
the evidence each violation was published (the online latency), from events.jsonl.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

import protocols
from labctl import api


def one(checkers: bool, rate: int, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="labctl-bench-") as tmp:
        config = {"protocol": protocols.LIGHTEST, "nodes": 3, "seed": 1, "options": {},
                  "fencing": False, "checkers": checkers, "name": "bench"}  # fmt: skip
        lab = api.up(Path(tmp) / "lab", config)
        sup = psutil.Process(lab.state["supervisor_pid"])
        try:
            spec = {"kind": "kv", "rate": rate, "clients": 4, "target": "leader"}
            lab.call("workload", action="start", spec=spec)
            time.sleep(1.0)  # warm-up: clients connected, steady load
            c0, t0 = sup.cpu_times(), time.monotonic()
            time.sleep(seconds)  # the measurement window
            c1, t1 = sup.cpu_times(), time.monotonic()
            ops = lab.status()["ops"]
        finally:
            answer = lab.down()
        cpu = (c1.user + c1.system - c0.user - c0.system) / (t1 - t0)
        delays = []
        for line in Path(answer["run_dir"], "events.jsonl").read_text().splitlines():
            e = json.loads(line)
            if e["kind"] == "violation":
                delays.append((e["t"] - e["at"]) * 1000)
        return {
            "checkers": checkers,
            "supervisor_cpu_pct": round(100 * cpu, 1),
            "ops_ok": ops["ok"],
            "violations": len(delays),
            "violation_delay_ms_max": round(max(delays), 3) if delays else None,
        }


def run(rate: int = 1000, seconds: float = 8.0) -> dict[str, Any]:
    return {"rate": rate, "seconds": seconds, "on": one(True, rate, seconds),
            "off": one(False, rate, seconds)}  # fmt: skip


if __name__ == "__main__":
    print(json.dumps(run()))
