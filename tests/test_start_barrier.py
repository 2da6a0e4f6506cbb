"""A lab's initial start under load: replicas that finish importing at different times
still start their protocols together (the start barrier, labctl/supervisor.py), so a naive
lab starts with one leader, r0 in term 1, as README's split-brain walkthrough says, even
while both cores are busy. A restart of one node does not wait for any barrier."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CLI, read_jsonl, wait_until

# Each busy loop is a process of its own, so the replicas' imports compete for both cores
# (what a busy laptop does to a lab's start).
BUSY = "while True: pass"


@pytest.fixture
def busy_cores() -> Iterator[None]:
    procs = [
        subprocess.Popen([sys.executable, "-c", BUSY], stdin=subprocess.DEVNULL)
        for _ in range(os.cpu_count() or 2)
    ]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def _events(cli: CLI) -> list[dict]:
    run_dir = Path(cli.state()["run_dir"])
    return read_jsonl(run_dir / "events.jsonl")


def test_a_naive_lab_started_under_load_has_one_leader_r0_in_term_1(
    cli: CLI, busy_cores: None
) -> None:
    cli.up("-n", "3", "--protocol", "naive")
    run_dir = Path(cli.state()["run_dir"])
    # No replica's protocol started (node.ready comes right after protocol.start) before
    # every replica had loaded (node.starting: WAL recovered, sockets connected).
    events = _events(cli)
    loaded = {e["src"]: e["t"] for e in events if e["kind"] == "node.starting"}
    ready = {e["src"]: e["t"] for e in events if e["kind"] == "node.ready"
             and e["src"].startswith("r")}  # fmt: skip
    assert sorted(loaded) == sorted(ready) == ["r0", "r1", "r2"]
    assert min(ready.values()) >= max(loaded.values()), (
        f"a protocol started {max(loaded.values()) - min(ready.values()):.3f}s before "
        f"the last replica had loaded: loaded {loaded}, ready {ready}"
    )
    # Well past the 300 ms election timeout: a follower whose clock started before r0's
    # heartbeats could reach it has promoted itself by then.
    last_ready = max(ready.values())
    wait_until(lambda: any(e["t"] > last_ready + 1.0 for e in _events(cli)), timeout=5)
    status = cli.status()
    assert status["leaders"] == ["r0"], status["nodes"]
    assert [n["term"] for n in status["nodes"] if n["id"] == "r0"] == [1]
    events = read_jsonl(run_dir / "events.jsonl")
    leaders = [(e["src"], e.get("term")) for e in events if e["kind"] == "became_leader"]
    assert leaders == [("r0", 1)]
    assert not [e for e in events if e["kind"] == "violation"], "split brain before any fault"


def test_a_restarted_replica_starts_at_once_without_a_barrier(cli: CLI) -> None:
    cli.up("-n", "3", "--protocol", "naive")
    cli.run("fault", "kill", "r1")
    cli.run("fault", "restart", "r1")  # returns once r1 runs: nobody releases it
    status = cli.status()
    assert {n["id"]: n["state"] for n in status["nodes"]}["r1"] == "running"
    assert status["leaders"] == ["r0"]
    events = _events(cli)
    # The lab's start released all three once; the restart loaded and started r1 at once.
    assert [e["kind"] for e in events if e["kind"] == "lab.released"] == ["lab.released"]
    starts = [e["kind"] for e in events if e["src"] == "r1"
              and e["kind"] in ("node.starting", "node.loaded", "node.ready")]  # fmt: skip
    assert starts == ["node.starting", "node.loaded", "node.ready",
                      "node.starting", "node.ready"]  # fmt: skip
