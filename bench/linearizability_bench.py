"""Benchmark of the linearizability checker on a generated kv history.

    python bench/linearizability_bench.py [--ops 10000] [--keys 10] [--clients 8]
        [--info 0.03] [--repeat 3] [--seed 1] [--stale]        (prints one JSON object)

The history comes from a simulated register per key: each client runs one operation at a
time, with random think times and latencies so operations overlap; every operation takes
effect at a random instant between its invoke and its completion, which makes the history
linearizable by construction. A fraction of operations time out (info): half of those take
effect anyway, at a random instant after the invoke, and half never do. cas expects one
of the key's recent values, so some succeed and some fail. With --stale one get late in
the run is rewritten to return a value from long before: the checker must say no.

The goal (the lab's summary runs this at the end of every run): 10,000 operations over 10
keys from 8 clients in 5 s or less on a 2-core laptop.

Against another checker (Porcupine) on the same files:

    python bench/linearizability_bench.py --suite DIR      (writes DIR/<shape>-s<seed>.jsonl)
    python bench/linearizability_bench.py --files DIR/*.jsonl [--repeat 5]

--files prints one JSON line per file: the verdict, the best time of the whole path a
run directory takes (read the file, pair, check: "total_s") and of the search alone
("check_s"), so either can be set beside the other checker's load and check times.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(ROOT))

from labctl.checkers.history import pair_history  # noqa: E402
from labctl.checkers.linearizability import Budget, check_operations  # noqa: E402
from labctl.checkers.runner import read_jsonl  # noqa: E402

# The comparison suite: shapes x seeds 1..3, 10,000 operations each.
SUITE: dict[str, dict[str, Any]] = {
    "default": {"keys": 10, "clients": 8, "info": 0.03},
    "info20": {"keys": 10, "clients": 8, "info": 0.2},  # many timed-out writes
    "noinfo": {"keys": 10, "clients": 8, "info": 0.0},
    "c32": {"keys": 10, "clients": 32, "info": 0.03},
    "onekey": {"keys": 1, "clients": 8, "info": 0.03},
    "stale": {"keys": 10, "clients": 8, "info": 0.03, "stale": True},
    "onekey-stale": {"keys": 1, "clients": 8, "info": 0.03, "stale": True},
    "onekey-c32": {"keys": 1, "clients": 32, "info": 0.03},  # 32 concurrent on one key
}

MEAN_THINK = 0.0002  # s between a completion and the client's next invoke
MEAN_LATENCY = 0.001
TIMEOUT = 0.005  # an info operation's client gives up after this long


def generate(
    ops: int, keys: int, clients: int, info: float, seed: int, stale: bool = False
) -> list[dict[str, Any]]:
    """A linearizable history (unless `stale`) as history.jsonl records, in time order."""
    rng = random.Random(seed)
    names = [f"k{i}" for i in range(keys)]
    ready = [(rng.random() * MEAN_THINK, f"c{c}") for c in range(clients)]
    heapq.heapify(ready)
    planned = []  # (effect time or None, invoke record, completion record)
    recent: dict[str, list[str]] = {k: [] for k in names}
    for n in range(ops):
        t, proc = heapq.heappop(ready)
        key = rng.choice(names)
        roll = rng.random()
        op = "put" if roll < 0.45 else "get" if roll < 0.85 else "cas"
        rid = f"{proc}:{n}"
        invoke: dict[str, Any] = {"type": "invoke", "t": t, "process": proc, "request_id": rid,
                                  "op": op, "key": key}  # fmt: skip
        if op != "get":
            invoke["value"] = f"v{n}"
            recent[key] = [*recent[key][-3:], f"v{n}"]
        if op == "cas":
            invoke["expected"] = rng.choice([*recent[key][:-1], None]) if recent[key] else None
        latency = rng.lognormvariate(0, 0.8) * MEAN_LATENCY
        if rng.random() < info:
            done_t = t + TIMEOUT
            # A timed-out write may still take effect, even after the client gave up.
            effect = t + rng.random() * 2 * TIMEOUT if rng.random() < 0.5 else None
            status = "info"
        else:
            done_t = t + latency
            effect = t + rng.random() * latency
            status = "ok"
        done = {"type": status, "t": done_t, "process": proc, "request_id": rid, "op": op,
                "key": key}  # fmt: skip
        planned.append((effect, invoke, done))
        heapq.heappush(ready, (done_t + rng.expovariate(1 / MEAN_THINK), proc))
    # Apply the effects in time order to one register per key to learn the results.
    register: dict[str, str | None] = dict.fromkeys(names)
    for _effect, invoke, done in sorted(
        (p for p in planned if p[0] is not None), key=lambda p: p[0]
    ):
        key, op = invoke["key"], invoke["op"]
        if op == "put":
            register[key] = invoke["value"]
        elif op == "get":
            done["value"] = register[key]
        elif register[key] == invoke["expected"]:
            register[key] = invoke["value"]
        elif done["type"] == "ok":
            done["type"] = "fail"  # the compare failed: it did not happen
    if stale:
        # A read late in the run that returns the first value ever written to its key.
        for _, invoke, done in reversed(planned):
            if invoke["op"] == "get" and done["type"] == "ok" and done.get("value") is not None:
                first = next(p[1]["value"] for p in planned
                             if p[1]["key"] == invoke["key"] and p[1]["op"] == "put")  # fmt: skip
                done["value"] = first
                break
    records = [r for _, invoke, done in planned for r in (invoke, done)]
    records.sort(key=lambda r: r["t"])
    return records


def write_suite(out: Path, ops: int) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, shape in SUITE.items():
        for seed in (1, 2, 3):
            records = generate(ops, shape["keys"], shape["clients"], shape["info"], seed,
                               shape.get("stale", False))  # fmt: skip
            path = out / f"{name}-s{seed}.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in records))
            paths.append(path)
    return paths


def time_files(paths: list[str], repeat: int, seconds: float) -> None:
    for path in paths:
        total, check, results = [], [], {}
        for _ in range(repeat):
            t0 = time.perf_counter()
            ops = pair_history(r for r in read_jsonl(Path(path)) if r is not None)
            t1 = time.perf_counter()
            results = check_operations(ops, Budget(seconds=seconds))
            t2 = time.perf_counter()
            total.append(t2 - t0)
            check.append(t2 - t1)
        statuses = sorted({r.status for r in results.values()})
        verdict = next((v for v in ("violation", "unknown") if v in statuses), "ok")
        steps = sum(r.steps for r in results.values())
        print(json.dumps({"file": path, "ops": len(ops), "result": verdict, "steps": steps,
                          "total_s": round(min(total), 4), "check_s": round(min(check), 4)}),
              flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ops", type=int, default=10000)
    ap.add_argument("--keys", type=int, default=10)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--info", type=float, default=0.03, help="fraction of ops that time out")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--stale", action="store_true", help="inject one stale read")
    ap.add_argument("--suite", metavar="DIR", help="write the comparison suite's histories")
    ap.add_argument("--files", nargs="+", metavar="FILE", help="time history.jsonl files")
    ap.add_argument("--seconds", type=float, default=120.0, help="--files: budget per key")
    a = ap.parse_args()
    if a.suite:
        for path in write_suite(Path(a.suite), a.ops):
            print(path)
        return
    if a.files:
        time_files(a.files, a.repeat, a.seconds)
        return
    records = generate(a.ops, a.keys, a.clients, a.info, a.seed, a.stale)
    statuses = [r["type"] for r in records if r["type"] != "invoke"]
    times, results = [], {}
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        results = check_operations(pair_history(records))
        times.append(time.perf_counter() - t0)
    print(
        json.dumps(
            {
                "ops": a.ops,
                "keys": a.keys,
                "clients": a.clients,
                "seed": a.seed,
                "status": {s: statuses.count(s) for s in ("ok", "fail", "info")},
                "linearizable": all(r.status == "ok" for r in results.values()),
                "searched_ops": sum(r.ops for r in results.values()),
                "steps": sum(r.steps for r in results.values()),
                "seconds": {
                    "min": round(min(times), 3),
                    "median": round(statistics.median(times), 3),
                    "max": round(max(times), 3),
                    "runs": [round(x, 3) for x in times],
                },
            }
        )
    )


if __name__ == "__main__":
    main()
