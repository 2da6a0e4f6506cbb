"""PySyncObj 0.3.17 as the benchmark's yardstick: a 3-node cluster of local processes
(this module with --pso-node, driven over stdin), its committed ops/s at an offered-rate
ladder, and whether its replicas agreed. Used by `labctl bench raft`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from labctl.benchmarks.loadgen import percentiles
from labctl.benchmarks.procs import Procs, machine_busy

PYSYNCOBJ_VERSION = "0.3.17"
CHECKPOINT = 1000  # PySyncObj replicas record their digest every this many commands


# -- 6: PySyncObj and labctl at the same offered rates -------------------------------------


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def pysyncobj_available() -> str | None:
    """The installed version if it is the one we compare with, else None."""
    try:
        from pysyncobj.version import VERSION  # type: ignore[import-not-found]
    except ImportError:
        return None
    return str(VERSION)


class _PsoCluster:
    """Three PySyncObj node processes (this module with --pso-node), driven over stdin."""

    def __init__(self, procs: Procs, tmp: Path) -> None:
        ports = _free_ports(3)
        addrs = [f"127.0.0.1:{p}" for p in ports]
        self.procs = procs
        self.logs = [tmp / f"pso{i}.log" for i in range(3)]
        self.nodes: list[subprocess.Popen[bytes]] = []
        for i, addr in enumerate(addrs):
            partners = [a for a in addrs if a != addr]
            with self.logs[i].open("wb") as log:
                self.nodes.append(
                    procs.spawn(
                        [
                            "-m",
                            "labctl.benchmarks.pysyncobj",
                            "--pso-node",
                            "--index",
                            str(i),
                            "--self",
                            addr,
                            "--partners",
                            ",".join(partners),
                            "--parent-pid",
                            str(os.getpid()),
                        ],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=log,
                    )
                )

    def tell(self, req: dict[str, Any]) -> None:
        line = (json.dumps(req) + "\n").encode()
        for p in self.nodes:
            assert p.stdin is not None
            p.stdin.write(line)
            p.stdin.flush()

    def collect(self, what: str, timeout: float) -> list[dict[str, Any]]:
        out = []
        deadline = time.monotonic() + timeout
        for p in self.nodes:
            assert p.stdout is not None
            ready, _, _ = select.select(
                [p.stdout.fileno()], [], [], max(0.0, deadline - time.monotonic())
            )
            if not ready:
                raise RuntimeError(f"a pysyncobj node did not answer {what!r}")
            raw = p.stdout.readline()
            if not raw:
                raise RuntimeError("a pysyncobj node exited")
            out.append(json.loads(raw))
        return out

    def ask(self, req: dict[str, Any], timeout: float) -> list[dict[str, Any]]:
        self.tell(req)
        return self.collect(req["cmd"], timeout)

    def log_problems(self) -> dict[str, Any]:
        lines: list[str] = []
        for path in self.logs:
            with contextlib.suppress(OSError):
                for ln in path.read_text(errors="replace").splitlines():
                    low = ln.lower()
                    if "diverged" in low or "indexerror" in low or "traceback" in low:
                        lines.append(f"{path.name}: {ln.strip()[:200]}")
        return {"count": len(lines), "lines": lines[:10]}


def pysyncobj_ladder(procs: Procs, rates: list[int], warmup: float, duration: float) -> dict:
    version = pysyncobj_available()
    if version is None:
        return {"error": "pysyncobj not installed (pip install -e '.[bench]')"}
    tmp = Path(tempfile.mkdtemp(prefix="labctl-bench-pso-"))
    cluster = None
    try:
        cluster = _PsoCluster(procs, tmp)
        cluster.ask({"cmd": "wait_leader"}, timeout=20)
        steps = []
        for rate in rates:
            start = time.monotonic() + 0.2
            cluster.tell(
                {
                    "cmd": "load",
                    "rate": rate / 3,
                    "start_at": start,
                    "warmup": warmup,
                    "duration": duration,
                    "grace": 1.0,
                }
            )
            machine = machine_busy(start + warmup, duration)
            res = cluster.collect("load", timeout=warmup + duration + 20)
            ok = sum(r["ok"] for r in res)
            cpu_s = sum(r["cpu_s"] for r in res)
            sent = sum(r["sent"] for r in res)
            ok_all = sum(r["ok_total"] for r in res)
            errors: dict[str, int] = {}
            for r in res:
                for k, v in r["errors"].items():
                    errors[k] = errors.get(k, 0) + v
            steps.append(
                {
                    "offered_per_s": rate,
                    "committed_per_s": round(ok / duration, 1),
                    "success_rate": round(ok_all / sent, 3) if sent else None,
                    "sent": sent,
                    "errors": errors,
                    "cpu_pct": round(100 * cpu_s / duration, 1),
                    "cpu_us_per_committed_op": round(1e6 * cpu_s / ok, 1) if ok else None,
                    "machine_busy_pct": machine,
                    "latency_ms_p50_per_node": [r["latency_ms"].get("p50") for r in res],
                    "latency_ms_p99_per_node": [r["latency_ms"].get("p99") for r in res],
                }
            )
        agreement = _pso_agreement(cluster)
        return {
            "version": version,
            "journal": "in memory (no fsync)",
            "steps": steps,
            "max_committed_per_s": max(s["committed_per_s"] for s in steps),
            "max_offered_with_90pct_success": max(
                [s["offered_per_s"] for s in steps if (s["success_rate"] or 0) >= 0.9],
                default=None,
            ),
            "replicas": agreement,
            "log_problems": cluster.log_problems(),
        }
    finally:
        if cluster is not None:
            for p in cluster.nodes:
                procs.kill(p)
        shutil.rmtree(tmp, ignore_errors=True)


def _pso_agreement(cluster: _PsoCluster, timeout: float = 15.0) -> dict[str, Any]:
    """Wait for the replicas to apply the same number of commands, then compare digests:
    the final ones, and those every CHECKPOINT commands (so that a replica that never
    catches up is still compared on the prefix it has)."""
    deadline = time.monotonic() + timeout
    while True:
        states = cluster.ask({"cmd": "state"}, timeout=10)
        counts = {s["applied"] for s in states}
        if len(counts) == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    common = set.intersection(*(set(s["checkpoints"]) for s in states))
    differ = sorted(
        (int(k) for k in common if len({s["checkpoints"][k] for s in states}) > 1),
    )
    converged = len(counts) == 1
    return {
        "converged": converged,
        "applied": [s["applied"] for s in states],
        "final_digests_equal": converged and len({s["digest"] for s in states}) == 1,
        "checkpoints_compared": len(common),
        "first_divergent_checkpoint": differ[0] if differ else None,
        "divergent_checkpoints": len(differ),
    }


# -- the PySyncObj node process ------------------------------------------------------------


def _pso_node(args: argparse.Namespace) -> None:
    import logging

    from nodes.process import die_with_parent

    die_with_parent(args.parent_pid)
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated

    class Counter(SyncObj):
        """A replicated counter with an order-sensitive digest of what it applied."""

        def __init__(self, me: str, partners: list[str]) -> None:
            super().__init__(me, partners, SyncObjConf(dynamicMembershipChange=False))
            self.applied = 0
            self.digest = 0
            self.checkpoints: dict[int, int] = {}  # applied count -> digest, every 1000

        @replicated
        def add(self, v: int) -> int:
            self.applied += 1
            self.digest = (self.digest * 1_000_003 + v) & 0xFFFFFFFFFFFFFFFF
            if self.applied % CHECKPOINT == 0:
                self.checkpoints[self.applied] = self.digest
            return self.applied

    obj = Counter(args.self_addr, args.partners.split(","))
    lock = threading.Lock()
    reason_name = {v: k for k, v in vars(FAIL_REASON).items() if isinstance(v, int)}
    seq = args.index * 10**12

    def reply(doc: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(doc) + "\n")
        sys.stdout.flush()

    for line in sys.stdin:
        req = json.loads(line)
        cmd = req["cmd"]
        if cmd == "wait_leader":
            while obj._getLeader() is None:  # as PySyncObj's own benchmark waits
                time.sleep(0.05)
            time.sleep(0.5)
            reply({"leader": str(obj._getLeader())})
        elif cmd == "load":
            rate, start = req["rate"], req["start_at"]
            lo = start + req["warmup"]
            hi = lo + req["duration"]
            st = {"sent": 0, "ok": 0, "ok_total": 0, "outstanding": 0}
            errors: dict[str, int] = {}
            lat: list[float] = []

            def callback(
                res: Any, err: int, t0: float, st=st, errors=errors, lat=lat, lo=lo, hi=hi
            ) -> None:
                now = time.monotonic()
                with lock:
                    st["outstanding"] -= 1
                    if err == FAIL_REASON.SUCCESS:
                        st["ok_total"] += 1
                        if lo <= now < hi:
                            st["ok"] += 1
                            lat.append((now - t0) * 1000)
                    else:
                        name = reason_name.get(err, str(err))
                        errors[name] = errors.get(name, 0) + 1

            time.sleep(max(0.0, start - time.monotonic()))
            tick = 0.01
            next_t = start
            due = 0.0
            cpu0: float | None = None
            while (now := time.monotonic()) < hi:
                if cpu0 is None and now >= lo:
                    cpu0 = time.process_time()  # every thread: the driver and SyncObj's
                due += rate * tick
                n = int(due)
                due -= n
                for _ in range(n):
                    seq += 1
                    t0 = time.monotonic()
                    with lock:
                        st["outstanding"] += 1
                        st["sent"] += 1
                    obj.add(seq, callback=lambda r, e, t0=t0: callback(r, e, t0))
                next_t += tick
                time.sleep(max(0.0, next_t - time.monotonic()))
            cpu_s = time.process_time() - (cpu0 if cpu0 is not None else time.process_time())
            end = hi + req["grace"]
            while time.monotonic() < end:
                with lock:
                    if st["outstanding"] <= 0:
                        break
                time.sleep(0.01)
            with lock:
                reply(
                    {**st, "errors": dict(errors), "latency_ms": percentiles(lat), "cpu_s": cpu_s}
                )
        elif cmd == "state":
            st = obj.getStatus()
            reply(
                {
                    "applied": obj.applied,
                    "digest": obj.digest,
                    "commit_idx": st.get("commit_idx"),
                    "last_applied": st.get("last_applied"),
                    "checkpoints": {str(k): v for k, v in obj.checkpoints.items()},
                }
            )
        elif cmd == "quit":
            break
    obj.destroy()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="labctl.benchmarks.pysyncobj")
    p.add_argument("--pso-node", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--self", dest="self_addr", default=None)
    p.add_argument("--partners", default="")
    p.add_argument("--parent-pid", type=int, default=None)
    _pso_node(p.parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
