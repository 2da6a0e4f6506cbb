"""labctl's Raft and a real etcd side by side: one run, the same faults, the same clients.

    labctl bench etcd [--quick] [--json]
    python -m labctl.benchmarks.etcd [--quick]            (prints one JSON object)

Both labs are up at once for the whole run (3 replicas each, fsync on: etcd always
fsyncs its WAL), and every phase runs on one, then at once on the other, so both see the
same machine. The clients are the lab's own for both (labctl.benchmarks.loadgen, DEALER
endpoints on the fault router): for etcd they reach the member processes
(nodes/etcd/member.py), which call their etcd's HTTP/JSON gateway. Figures, per system:

  1. write latency p50/p99 at an offered 500 puts/s, open loop, to the leader;
  2. reads at an offered 500/s each, separately: linearizable (Raft: a quorum read;
     etcd: its default ReadIndex read) and lease (Raft: a leader-lease read; etcd: a
     serializable read, the member's own state, the read without a quorum round: etcd
     3.4's API has no leader-lease read);
  3. 1. and 2. again with the same fault on both: 3 ms +-0.5 on every replica-to-replica
     link, one way (the router for Raft, the TCP fault proxy for etcd's peer traffic),
     the seed's links between zones; clients stay next to the leader;
  4. failover: SIGKILL of the leader (for etcd: the etcd binary and its member process at
     once) until a write is acknowledged again, for a client that re-sends every 50 ms
     to the next replica; the killed node restarted between trials (etcd on its own WAL)
     and a stable leader awaited; median of 5 (3 with --quick).

Each system runs with the lab's settings, which are in the result: Raft elects after
150-300 ms without a heartbeat (50 ms); etcd with the lab's etcd defaults, its own
(heartbeat 100 ms, election 1000 ms), so its failover is mostly that timeout. An etcd
lab also writes about 8 entries/s of its own: every member process contends for the seed
order router's lease lock (nodes/etcd/lockrouter.py).

Needs the etcd binary and root (network namespaces); `unavailable()` says which is
missing, and `labctl bench all` skips this benchmark with that reason.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

from labctl import api
from labctl.benchmarks.labs import (
    bench_lab,
    quick_main,
    run_terminable,
    settle,
    stable_leader,
)
from labctl.benchmarks.procs import Procs
from labctl.benchmarks.procs import say as _say
from labctl.benchmarks.raft import SEED_JITTER_MS, SEED_LINK_MS, failover, open_latency

SYSTEMS = ("raft", "etcd")


def unavailable() -> str | None:
    """Why this machine cannot run the benchmark (no etcd, not root), or None."""
    from labctl.etcd import SystemConfigError, system_config

    try:
        system_config("etcd")
    except SystemConfigError as e:
        return str(e)
    return None


@contextlib.contextmanager
def both_labs(system: dict[str, Any]) -> Iterator[dict[str, api.Lab]]:
    with bench_lab("raft", 3, True, "bench-etcd-raft") as raft, bench_lab(
        "etcd", 3, True, "bench-etcd-etcd", system=system
    ) as etcd:
        yield {"raft": raft, "etcd": etcd}


def settings(system: dict[str, Any]) -> dict[str, Any]:
    from protocols.raft.options import Options

    o = Options()
    return {
        "raft": {"heartbeat_ms": o.heartbeat_interval * 1000,
                 "election_ms": [o.election_timeout * 1000, 2 * o.election_timeout * 1000],
                 "pre_vote": o.pre_vote, "check_quorum": o.check_quorum},
        "etcd": {"heartbeat_ms": system.get("heartbeat_ms"),
                 "election_ms": system.get("election_ms"),
                 "pre_vote": bool(system.get("pre_vote")), "version": etcd_version()},
    }  # fmt: skip


def etcd_version() -> str | None:
    from labctl.etcd import find_binary

    try:
        out = subprocess.run([find_binary(None), "--version"], capture_output=True, text=True,
                             timeout=10).stdout  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = out.splitlines()[0] if out else ""
    return first.split(":", 1)[1].strip() if ":" in first else None


def latency_round(
    procs: Procs, labs: dict[str, api.Lab], warm: float, dur: float
) -> dict[str, Any]:
    """1. and 2. on each system in turn (the other idle), each after its lab settled."""
    out: dict[str, Any] = {}
    for name in SYSTEMS:
        lab = labs[name]
        r: dict[str, Any] = {}
        for key, op, mode in (("write", "put", "log"), ("read_linearizable", "get", "quorum"),
                              ("read_lease", "get", "lease")):  # fmt: skip
            settle(list(labs.values()))
            r[key] = open_latency(procs, lab, op, mode, 500, warm, dur)
        out[name] = r
    return out


def with_link_delay(
    procs: Procs, labs: dict[str, api.Lab], warm: float, dur: float
) -> dict[str, Any]:
    """The latency round with the same delay on every replica link of both labs."""
    for lab in labs.values():
        replicas = [n["id"] for n in lab.status()["nodes"]]
        lab.fault({"fault": "delay", "from": replicas, "to": replicas, "ms": SEED_LINK_MS,
                   "jitter": SEED_JITTER_MS})  # fmt: skip
    try:
        return latency_round(procs, labs, warm, dur)
    finally:
        for lab in labs.values():
            lab.fault({"fault": "heal"})


def run(quick: bool = False) -> dict[str, Any]:
    return run_terminable(_run, quick)


def _run(quick: bool) -> dict[str, Any]:
    why = unavailable()
    if why:
        raise RuntimeError(f"bench etcd cannot run here: {why}")
    t_start = time.monotonic()
    warm, dur = (0.5, 3.0) if quick else (1.0, 6.0)
    trials = 3 if quick else 5
    result: dict[str, Any] = {
        "quick": quick,
        "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "offered_per_s": 500,
    }
    from labctl.etcd import system_config

    system = system_config("etcd")
    result["settings"] = settings(system)
    procs = Procs()
    try:
        with both_labs(system) as labs:
            for lab in labs.values():
                stable_leader(lab, timeout=30)
            _say("1, 2. writes, linearizable and lease reads at 500/s, raft then etcd ...")
            result["loopback"] = latency_round(procs, labs, warm, dur)
            _say(f"3. the same with {SEED_LINK_MS:g} ms +-{SEED_JITTER_MS:g} on every replica "
                 "link of both labs ...")  # fmt: skip
            result["replica_link_delay"] = {"ms": SEED_LINK_MS, "jitter_ms": SEED_JITTER_MS,
                                            **with_link_delay(procs, labs, warm, dur)}  # fmt: skip
            result["failover"] = {}
            for name in SYSTEMS:
                _say(f"4. {name} failover: SIGKILL the leader until a write is acked, "
                     f"x{trials} ...")  # fmt: skip
                settle(list(labs.values()))
                result["failover"][name] = failover(labs[name], trials)
    finally:
        procs.kill_all()
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    result["elapsed_s"] = round(time.monotonic() - t_start, 1)
    return result


# -- the table -----------------------------------------------------------------------------


def _ms(lat: dict[str, Any] | None) -> str:
    if not lat or not lat.get("n"):
        return "no replies"
    return f"{lat['p50']:.2f} / {lat['p99']:.2f}"


def render(r: dict[str, Any]) -> str:
    """The result as a side-by-side table (ms p50 / p99; failover median and range)."""
    rows: list[tuple[str, str, str]] = []
    for section, title in (("loopback", ""), ("replica_link_delay", " +3 ms links")):
        part = r.get(section) or {}
        for key, label in (("write", "write @500/s"),
                           ("read_linearizable", "linearizable read @500/s"),
                           ("read_lease", "lease read @500/s")):  # fmt: skip
            cells = []
            for name in SYSTEMS:
                ph = (part.get(name) or {}).get(key) or {}
                cell = _ms(ph.get("latency_ms"))
                lost = (ph.get("timeouts") or 0) + (ph.get("fail") or 0)
                cells.append(cell + (f" ({lost} lost)" if lost else ""))
            rows.append((f"{label}{title}", cells[0], cells[1]))
    cells = []
    for name in SYSTEMS:
        fo = (r.get("failover") or {}).get(name)
        cells.append(f"{fo['median_s']:.3f} s ({fo['min_s']:.2f}-{fo['max_s']:.2f}, "
                     f"n={fo['trials']})" if fo else "not run")  # fmt: skip
    rows.append(("failover after SIGKILL", cells[0], cells[1]))
    s = r.get("settings") or {}
    raft_s, etcd_s = s.get("raft") or {}, s.get("etcd") or {}
    rows.append(("heartbeat / election ms",
                 f"{raft_s.get('heartbeat_ms', '?'):g} / "
                 + "-".join(f"{x:g}" for x in raft_s.get("election_ms", [])),
                 f"{etcd_s.get('heartbeat_ms')} / {etcd_s.get('election_ms')}"
                 + (f" (etcd {etcd_s['version']})" if etcd_s.get("version") else "")))  # fmt: skip
    w0 = max(len(a) for a, _, _ in rows)
    w1 = max(len("labctl raft"), *(len(b) for _, b, _ in rows))
    lines = [f"{'latency ms p50 / p99':<{w0}}  {'labctl raft':<{w1}}  etcd"]
    lines += [f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows]
    lines.append(f"load {r.get('loadavg_before')} -> {r.get('loadavg_after')} on "
                 f"{r.get('cpus')} cpus, {r.get('elapsed_s')} s; lease read on etcd = "
                 "serializable")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    quick_main("labctl.benchmarks.etcd", run, argv)


if __name__ == "__main__":
    main()
