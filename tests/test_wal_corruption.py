"""Issue 14, case 6: a corrupt WAL is not a torn tail, in a real lab.

`fault disk NODES --corrupt flip|lose` stops the nodes, damages their WALs and starts them
again. Raft rejoins repairing (no vote, no candidacy until a leader repaired it); the
other protocols refuse to start, naming the file and offset; a lost write that no
checksum could see is reported by the checkers, never a clean verdict.
"""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from tests.conftest import CLI, read_jsonl, wait_until


def _write(cli: CLI, n: int) -> dict[str, str]:
    values = {f"k{i}": f"v{i}" for i in range(n)}
    for k, v in values.items():
        assert cli.json("client", "put", k, v, "--timeout", "5s")["status"] == "ok"
    return values


def _violations(cli: CLI, run_dir: str) -> collections.Counter:
    doc = cli.json("check", run_dir, check=False)
    return collections.Counter(v["kind"] for v in doc["violations"])


def _running(cli: CLI) -> list[str]:
    return [n["id"] for n in cli.status()["nodes"] if n["state"] == "running"]


def test_raft_with_two_of_three_wals_losing_acknowledged_writes_is_never_clean(
    cli: CLI,
) -> None:
    state = cli.up("-n", "3", "-p", "raft")
    _write(cli, 12)
    cli.run("fault", "kill", "leader")
    survivors = wait_until(lambda: (r := _running(cli)) and len(r) == 2 and r, timeout=5)
    # One power cut: both survivors lose their newest records, fsynced ones included; no
    # checksum can see it, so they come back believing their shorter logs.
    out = cli.run("fault", "disk", ",".join(survivors), "--corrupt", "lose")
    assert out.stderr.count("lost records") == 2
    dead = next(n for n in ("r0", "r1", "r2") if n not in survivors)
    cli.run("fault", "restart", dead)
    wait_until(lambda: cli.status()["leaders"], timeout=10)
    cli.run("down")
    kinds = _violations(cli, state["run_dir"])
    assert kinds["lost-write"] >= 1, kinds


@pytest.mark.slow
def test_a_flipped_bit_in_two_raft_wals_is_repaired_from_the_leader_and_loses_nothing(
    cli: CLI,
) -> None:
    state = cli.up("-n", "3", "-p", "raft")
    values = _write(cli, 12)
    leader = wait_until(lambda: cli.status()["leaders"], timeout=5)[0]
    followers = [n for n in ("r0", "r1", "r2") if n != leader]
    out = cli.run("fault", "disk", ",".join(followers), "--corrupt", "flip")
    assert out.stderr.count("restarted on it") == 2
    events = Path(state["run_dir"]) / "events.jsonl"

    def kinds_seen(kind: str) -> set[str]:
        return {e["src"] for e in read_jsonl(events) if e.get("kind") == kind}

    # Each says what was corrupt, rejoins repairing, and is repaired by the leader.
    assert kinds_seen("wal_corrupt") == set(followers)
    wait_until(lambda: kinds_seen("wal_repaired") == set(followers), timeout=10)
    assert all(not n.get("repairing") for n in cli.status()["nodes"])
    # Now the repaired pair can elect a leader without the old one, and holds everything.
    cli.run("fault", "kill", leader)
    wait_until(lambda: cli.status()["leaders"], timeout=10)
    for k, v in values.items():
        assert cli.json("client", "get", k, "--timeout", "5s")["value"] == v
    cli.run("down")
    kinds = _violations(cli, state["run_dir"])
    assert kinds["lost-write"] == 0, kinds


def test_a_protocol_that_cannot_repair_refuses_to_start_naming_file_and_offset(
    cli: CLI,
) -> None:
    state = cli.up("-n", "3", "-p", "naive")
    _write(cli, 8)
    out = cli.run("fault", "disk", "r1", "--corrupt", "flip")
    assert "r1: wal.log: flipped a bit" in out.stderr and "refused to start" in out.stderr
    node = next(n for n in cli.status()["nodes"] if n["id"] == "r1")
    assert node["state"] == "stopped"
    log = (Path(state["run_dir"]) / "logs" / "r1.log").read_text()
    wal = Path(state["run_dir"]) / "data" / "r1" / "wal.log"
    assert f"error: r1: WAL corrupt, refusing to start: {wal}: record" in log
    assert "at offset" in log and "not a torn tail" in log
    # Still refused on a later restart: the damage is on the disk, not in the process.
    again = cli.run("fault", "restart", "r1", check=False)
    assert again.returncode != 0 and "r1 exited during start" in again.stderr
