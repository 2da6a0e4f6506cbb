"""`labctl bench etcd`'s cheap parts (the benchmark itself needs root and etcd, and its
figures come from running it, never from a test): `bench all` names why it skipped etcd,
and the side-by-side table puts each system's figures in its column."""

from __future__ import annotations

import pytest

from labctl.benchmarks.etcd import render
from labctl.cli import bench


def test_bench_all_skips_etcd_saying_why_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setattr(bench, "ALL", ("etcd",))
    out = bench.run_all(quick=True)
    assert "root" in out["not_run"]["etcd"]
    assert "etcd" not in out["results"] and out["errors"] == {}


def test_the_table_is_side_by_side() -> None:
    def phase(p50: float, p99: float, timeouts: int = 0) -> dict:
        return {"latency_ms": {"p50": p50, "p99": p99, "n": 3000}, "timeouts": timeouts,
                "fail": 0}  # fmt: skip

    def system(base: float) -> dict:
        return {"write": phase(base, base * 3), "read_linearizable": phase(base / 2, base),
                "read_lease": phase(base / 10, base / 5, timeouts=2)}  # fmt: skip

    result = {
        "loopback": {"raft": system(1.0), "etcd": system(4.0)},
        "replica_link_delay": {"raft": system(7.0), "etcd": {}},
        "failover": {"raft": {"median_s": 0.23, "min_s": 0.2, "max_s": 0.3, "trials": 5}},
        "settings": {"raft": {"heartbeat_ms": 50.0, "election_ms": [150.0, 300.0]},
                     "etcd": {"heartbeat_ms": 100, "election_ms": 1000, "version": "3.4.23"}},
        "loadavg_before": [1.0, 1.0, 1.0], "loadavg_after": [2.0, 1.0, 1.0], "cpus": 2,
    }  # fmt: skip
    lines = render(result).splitlines()
    row = {line.split("  ")[0].strip(): line for line in lines}
    assert row["write @500/s"].split()[-3:] == ["4.00", "/", "12.00"]
    assert "1.00 / 3.00" in row["write @500/s"]
    assert "(2 lost)" in row["lease read @500/s"]
    assert row["write @500/s +3 ms links"].endswith("no replies")
    assert "0.230 s (0.20-0.30, n=5)" in row["failover after SIGKILL"]
    assert row["failover after SIGKILL"].endswith("not run")
    assert "etcd 3.4.23" in row["heartbeat / election ms"]
