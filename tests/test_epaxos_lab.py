"""EPaxos in the real lab: any replica takes writes, no replica is needed by all, and a
replica that was down catches up and executes the same history per key."""

from __future__ import annotations

from pathlib import Path

from labctl.checkers import check_run_dir
from tests.conftest import CLI, read_jsonl, wait_until


def nodes(cli: CLI) -> dict[str, dict]:
    return {n["id"]: n for n in cli.status()["nodes"]}


def test_every_replica_leads_its_own_writes_and_a_killed_one_catches_up(cli: CLI) -> None:
    cli.up("-n", "3", "-p", "epaxos")
    wait_until(lambda: {s.get("role") for s in nodes(cli).values()} == {"replica"}, timeout=3)
    assert cli.status()["leaders"] == []

    for i, via in enumerate(["r0", "r1", "r2"]):
        put = cli.json("client", "put", "x", f"v{i}", "--via", via)
        assert put["status"] == "ok" and put["node"] == via
    got = cli.json("client", "get", "x", "--via", "r0")
    assert got["status"] == "ok" and got["value"] == "v2"

    # No leader to lose: with r0 down the other two still form a quorum.
    cli.run("fault", "kill", "r0")
    for i in range(3):
        assert cli.json("client", "put", "y", f"w{i}", "--via", "r1")["status"] == "ok"
    cli.run("fault", "restart", "r0")

    def caught_up() -> bool:
        view = nodes(cli)
        return view["r0"]["state"] == "running" and view["r0"].get("executed") == view["r1"].get(
            "executed"
        )

    wait_until(caught_up, timeout=10)
    assert cli.json("client", "get", "y", "--via", "r0")["value"] == "w2"
    view = nodes(cli)
    assert all(s["fast_path"] + s["slow_path"] >= 1 for n, s in view.items() if n != "r0")
    status = cli.status()
    assert not status["violations"]
    run = Path(status["run_dir"])
    cli.run("down")
    verdict = check_run_dir(run)
    assert verdict["safe"], verdict["violations"]
    applied = [e for e in read_jsonl(run / "events.jsonl") if e["kind"] == "applied"]
    # r0 executed its history twice (before the kill and after the restart): per key, the
    # same order both times and everywhere.
    assert {e["src"] for e in applied} == {"r0", "r1", "r2"}
