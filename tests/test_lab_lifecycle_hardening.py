"""Issue 14's process cases: signals to a foreground `labctl up`, the router and the broker
supervised like replicas, `fault restart` that waits for a node that works, and children
that run the installed modules wherever the user stands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.conftest import CLI, wait_until


def _labctl() -> str:
    return str(Path(sys.executable).parent / "labctl")  # the console script a user runs


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL])
def test_a_signal_to_a_foreground_up_stops_the_lab_with_its_record(
    tmp_path: Path, sig: signal.Signals
) -> None:
    lab = tmp_path / "lab"
    proc = subprocess.Popen(
        [_labctl(), "up", "--table", "-p", "raft", "--lab-dir", str(lab)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    pids: list[int] = []
    try:
        wait_until(lambda: (lab / "state.json").exists(), timeout=30)
        state = json.loads((lab / "state.json").read_text())
        sup = psutil.Process(state["supervisor_pid"])
        pids = [sup.pid, *(c.pid for c in sup.children(recursive=True))]
        proc.send_signal(sig)
        proc.wait(timeout=30)
        wait_until(lambda: not any(psutil.pid_exists(p) and _running(p) for p in pids), 20)
        run = Path(state["run_dir"])
        assert json.loads((run / "summary.json").read_text())["protocol"] == "raft"
        assert not (lab / "state.json").exists()
        if sig != signal.SIGKILL:
            assert b"lab down" in proc.stderr.read()  # type: ignore[union-attr]
    finally:
        proc.kill()
        for p in pids:
            try:
                psutil.Process(p).kill()
            except psutil.Error:
                pass


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_up_works_from_a_directory_holding_folders_named_like_the_lab_modules(
    tmp_path: Path,
) -> None:
    here = tmp_path / "work"
    for name in ("labctl", "nodes", "faults", "protocols"):
        (here / name).mkdir(parents=True)
        (here / name / "__init__.py").write_text("raise SystemExit('shadowed')\n")
    cli = CLI(tmp_path / "lab")
    env = dict(os.environ, LABCTL_DIR=str(cli.lab_dir))
    try:
        up = subprocess.run([_labctl(), "up", "-d", "-p", "naive"], cwd=here, env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
        assert up.returncode == 0, up.stderr
        cli.track()
        put = subprocess.run([_labctl(), "client", "put", "k", "v"], cwd=here, env=env,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        assert put.returncode == 0, put.stderr
    finally:
        cli.cleanup()


def test_a_dead_router_is_reported_and_fault_restart_router_brings_it_back(cli: CLI) -> None:
    cli.up("-n", "3", "-p", "raft")
    assert cli.json("client", "put", "k", "v1")["status"] == "ok"
    cli.run("fault", "partition", "--from", "r0", "--to", "r1")
    router = cli.status()["processes"]["router"]["pid"]
    psutil.Process(router).kill()

    def reported() -> bool:
        doc = cli.status()
        return doc["processes"]["router"]["state"] == "stopped" and any(
            f["node"] == "router" and f["fault"] == "kill" for f in doc["faults"] if "node" in f
        )

    wait_until(reported, timeout=5)
    cli.run("fault", "restart", "router")
    doc = cli.status()
    assert doc["processes"]["router"]["state"] == "running"
    assert doc["processes"]["router"]["pid"] != router
    # Same data port (every endpoint reconnects), and the link faults in force again.
    links = cli.json("fault", "list")
    assert any(f["fault"] == "partition" for f in links)
    cli.run("fault", "heal")
    assert wait_until(lambda: cli.json("client", "put", "k", "v2", check=False).get("status")
                      == "ok", timeout=10)  # fmt: skip


def test_the_broker_can_be_killed_and_restarted_and_keeps_its_fencing_token(cli: CLI) -> None:
    cli.up("-n", "3", "-p", "raft", "--fencing")
    assert cli.json("client", "order", "--user", "u", "--qty", "1")["status"] == "ok"
    before = cli.status()["processes"]["broker"]["pid"]
    cli.run("fault", "kill", "broker")
    assert cli.status()["processes"]["broker"]["state"] == "stopped"
    cli.run("fault", "restart", "broker")
    doc = cli.status()
    assert doc["processes"]["broker"]["state"] == "running"
    assert doc["processes"]["broker"]["pid"] != before
    record = Path(doc["run_dir"]) / "broker.jsonl"
    highest = json.loads(record.read_text().splitlines()[-1])["highest"]
    assert highest >= 1
    from nodes.broker import highest_recorded

    assert highest_recorded(str(record)) == highest  # what the new broker fences from


def test_fault_restart_reports_a_node_that_cannot_start(cli: CLI) -> None:
    state = cli.up("-n", "3", "-p", "raft")
    cli.run("fault", "kill", "r2")
    wal = Path(state["run_dir"]) / "data" / "r2" / "wal.log"
    wal.unlink()
    wal.mkdir()  # a WAL it cannot read: the node dies replaying it
    result = cli.run("fault", "restart", "r2", check=False)
    assert result.returncode == 3, result.stderr
    assert "r2 exited" in result.stderr and "r2.log" in result.stderr
    assert cli.status()["processes"]["r2"]["state"] == "stopped"
    assert cli.json("client", "put", "k", "v")["status"] == "ok"  # two of three still commit


def test_down_with_a_workload_running_keeps_every_clients_last_records(tmp_path: Path) -> None:
    """`labctl down` stops the workload's clients before the data plane, so each one
    closes its open operations (info) and its records arrive: a client killed with the
    router loses its newest invokes, and another client's read of such a write then looks
    like a value from nowhere (a false nonlinearizable seen in a soak at load 27)."""
    from labctl import api
    from labctl.cli.lab import lab_config
    from tests.conftest import read_jsonl

    path = tmp_path / "lab"
    lab = api.up(path, lab_config("raft", 3, 42, {}, False))
    pids = [lab.state["supervisor_pid"],
            *(c.pid for c in psutil.Process(lab.state["supervisor_pid"]).children(True))]
    try:
        spec = {"kind": "kv", "rate": 400, "clients": 4, "target": "leader", "keys": 3}
        lab.call("workload", action="start", spec=spec)
        run = Path(lab.state["run_dir"])
        wait_until(lambda: (run / "history.jsonl").stat().st_size > 20_000, timeout=30)
        lab.down(timeout=30)
        done = [e for e in read_jsonl(run / "events.jsonl") if e.get("kind") == "workload.done"]
        assert sorted(e["src"] for e in done) == ["c0", "c1", "c2", "c3"]
        open_ops: set[str] = set()
        for h in read_jsonl(run / "history.jsonl"):
            if h["type"] == "invoke":
                open_ops.add(h["request_id"])
            else:
                open_ops.discard(h["request_id"])
        assert not open_ops  # every invoke has its completion, info for the ones cut short
        summary = json.loads((run / "summary.json").read_text())
        assert summary["checkers"]["safe"] is True
    finally:
        for p in pids:
            try:
                psutil.Process(p).kill()
            except psutil.Error:
                pass
