"""The seed, with real processes: the naive protocol under an asymmetric partition ends up
with three leaders that bind one sequence number to three different writes."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import CLI, read_jsonl, wait_until


def leaders(cli: CLI) -> list[str]:
    return cli.status()["leaders"]


def entries(cli: CLI) -> dict[str, dict[int, str]]:
    """Each replica's log: seq -> request id."""
    return {n["id"]: {e[0]: e[2] for e in n["entries"]} for n in cli.status()["nodes"]}


def test_naive_partition_gives_three_leaders_and_divergent_logs(cli: CLI) -> None:
    cli.up("-n", "3", "-p", "naive")
    first = cli.json("client", "put", "order", "riya-200-ALPHA", "--via", "r0")
    assert first == {"status": "ok", "node": "r0", "term": 1, "seq": 1}
    rejected = cli.json("client", "put", "order", "rahul-50-BETA", "--via", "r1", check=False)
    assert rejected == {"status": "not_leader", "node": "r1", "leader": "r0"}

    cli.run("fault", "partition", "--from", "r0", "--to", "r1,r2")
    wait_until(lambda: len(leaders(cli)) == 3, timeout=3)

    writes = {
        node: cli.json("client", "put", "order", f"write-via-{node}", "--via", node)
        for node in ("r0", "r1", "r2")
    }
    assert all(w["status"] == "ok" for w in writes.values())
    # Everyone appended after the replicated seq 1: seq 2 means three different writes.
    assert {w["seq"] for w in writes.values()} == {2}
    assert {w["term"] for w in writes.values()} == {1}  # two leaders in one term
    logs = entries(cli)
    assert len({logs[n][2] for n in logs}) == 3
    assert len({logs[n][1] for n in logs}) == 1  # seq 1 was replicated before the cut

    status = cli.status()
    assert sorted(status["leaders"]) == ["r0", "r1", "r2"]
    events = read_jsonl(Path(status["run_dir"]) / "events.jsonl")
    promotions = {
        e["src"] for e in events if e["kind"] == "became_leader" and e["how"] == "self-promoted"
    }
    assert promotions == {"r1", "r2"}

    # Healing the network repairs nothing: naive has no way to.
    cli.run("fault", "heal")
    assert cli.json("fault", "list") == []
    cli.json("client", "put", "order", "after-heal", "--via", "r1")
    assert sorted(leaders(cli)) == ["r0", "r1", "r2"]
    logs = entries(cli)
    assert len({logs[n][2] for n in logs}) == 3


def test_naive_without_replication_binds_seq_1_to_three_writes(cli: CLI) -> None:
    """The seed's own output: no replication, so every leader starts its log at seq 1."""
    cli.up("-n", "3", "-p", "naive", "--opt", "replicate=false")
    assert cli.json("client", "put", "k", "riya", "--via", "r0")["seq"] == 1
    cli.run("fault", "partition", "--from", "r0", "--to", "r1,r2")
    wait_until(lambda: len(leaders(cli)) == 3, timeout=3)
    r0 = cli.json("client", "put", "k", "riya-again", "--via", "r0")
    r1 = cli.json("client", "put", "k", "asha", "--via", "r1")
    r2 = cli.json("client", "put", "k", "kiran", "--via", "r2")
    assert (r0["term"], r0["seq"]) == (1, 2)
    assert (r1["term"], r1["seq"]) == (1, 1)
    assert (r2["term"], r2["seq"]) == (1, 1)
    logs = entries(cli)
    assert len({logs[n][1] for n in logs}) == 3
