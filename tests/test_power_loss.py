"""Power loss: a crash that also loses what was written without an fsync.

SIGKILL keeps the page cache, so a plain kill loses nothing a process wrote; the lab's
power loss cuts the WAL back to what the node's last fsync made durable (the length the
WAL reported in its sidecar after that fsync)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nodes.wal import WAL, cut_to_synced
from tests.conftest import CLI, wait_until


def test_a_power_loss_keeps_what_was_fsynced_and_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    wal, _ = WAL.open(path)
    wal.append([b"vote", b"entry 1"])
    wal.append([b"entry 2"], sync=False)  # written, not durable yet
    wal.append([b"entry 3"], sync=False)
    size = path.stat().st_size
    cut = cut_to_synced(path)  # the process is "dead": only the disk is left
    assert 0 < cut < size
    _, recovered = WAL.open(path)
    assert recovered == [b"vote", b"entry 1"]


def test_the_next_fsync_covers_lazy_writes_and_a_compaction_reports_itself(
    tmp_path: Path,
) -> None:
    path = tmp_path / "wal.log"
    wal, _ = WAL.open(path)
    wal.append([b"a"], sync=False)
    wal.append([b"b"])  # one fsync for both
    assert cut_to_synced(path) == 0
    wal.rewrite([b"snapshot"])
    wal.append([b"c"], sync=False)
    assert cut_to_synced(path) > 0
    _, recovered = WAL.open(path)
    assert recovered == [b"snapshot"]


def test_no_report_or_another_file_cuts_nothing(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    assert cut_to_synced(path) == 0  # no WAL at all
    wal, _ = WAL.open(path)
    wal.append([b"a"])
    wal.close()
    os.replace(path, tmp_path / "old")
    path.write_bytes(b"\0" * 64)  # another file at that name (a rename after the report)
    assert cut_to_synced(path) == 0


def _events(run_dir: str, kind: str) -> list[dict]:
    lines = Path(run_dir, "events.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("kind") == kind]


def test_fault_kill_power_loss_on_a_real_replica(cli: CLI) -> None:
    state = cli.up("-n", "3", "-p", "raft")
    cli.run("client", "put", "k", "v")
    cli.run("fault", "kill", "r1", "--power-loss")
    cli.run("fault", "restart", "r1")
    cli.run("client", "put", "k", "w")
    assert wait_until(lambda: bool(_events(state["run_dir"], "fault.power_loss")), 5.0)
    (event,) = _events(state["run_dir"], "fault.power_loss")
    assert event["node"] == "r1" and event["lost_bytes"] == 0  # Raft fsyncs before it acks


@pytest.mark.slow
def test_ack_before_fsync_is_caught_on_real_processes_and_correct_raft_is_not(cli: CLI) -> None:
    mutant = cli.run("scenario", "run", "power-loss", "--mutate", "ack-before-fsync", "--json",
                     check=False, timeout=120)  # fmt: skip
    summary = json.loads(mutant.stdout)
    assert mutant.returncode == 1, mutant.stderr
    assert {v["kind"] for v in summary["violations"]} & {"lost-write", "divergence"}
    correct = cli.run("scenario", "run", "power-loss", "--json", check=False, timeout=120)
    assert correct.returncode == 0, correct.stderr
