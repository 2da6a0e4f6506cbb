"""Process faults with real signals: pause (SIGSTOP), kill and restart from the WAL, and the
lab's own lifecycle (down, SIGKILL of the supervisor, a second up)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import CLI, slack, wait_until


def pid_of(cli: CLI, node: str) -> int:
    return next(n["pid"] for n in cli.status()["nodes"] if n["id"] == node)


def node(cli: CLI, name: str) -> dict:
    return next(n for n in cli.status()["nodes"] if n["id"] == name)


def test_pause_really_stops_the_process_for_the_asked_time(cli: CLI) -> None:
    cli.up("-n", "3", "-p", "naive")
    proc = psutil.Process(pid_of(cli, "r0"))
    # Watch the kernel's view of the process from before the fault to after it ends.
    seen: dict[str, float] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            stopped = proc.status() == psutil.STATUS_STOPPED
            now = time.monotonic()
            if stopped and "stopped" not in seen:
                seen["stopped"] = now
            if not stopped and "stopped" in seen:
                seen["running"] = now
                return
            time.sleep(0.001)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        cli.run("fault", "pause", "r0", "--for", "2s")
        # (what the kernel says is watched above; a status call here could come after the
        # 2 s on a starved machine)
        watcher.join(timeout=slack(5))
    finally:
        done.set()
        watcher.join()
    assert "running" in seen, "never resumed"
    paused_for = seen["running"] - seen["stopped"]
    # The watcher may see the stop late (it shares two busy cores), so the lower bound
    # allows its lag; the resume may come late, never early: the upper bound is slack.
    assert 2.0 - 0.5 <= paused_for <= slack(2.0), paused_for
    assert node(cli, "r0")["state"] == "running"


def test_killed_node_restarts_with_every_fsynced_entry(cli: CLI) -> None:
    cli.up("-n", "3", "-p", "naive")
    for i in range(5):
        assert cli.json("client", "put", f"k{i}", f"v{i}", "--via", "r0")["status"] == "ok"
    wait_until(lambda: node(cli, "r1")["log"] == 5)
    before = node(cli, "r1")
    cli.run("fault", "kill", "r1")
    assert (
        not psutil.pid_exists(before["pid"]) or psutil.Process(before["pid"]).status() == "zombie"
    )
    assert node(cli, "r1")["state"] == "stopped"
    cli.run("fault", "restart", "r1")
    after = node(cli, "r1")
    assert after["state"] == "running"
    assert after["pid"] != before["pid"]
    assert after["log"] == 5
    assert after["entries"] == before["entries"]


def test_down_leaves_no_process_and_a_complete_run_record(cli: CLI) -> None:
    state = cli.up("-n", "3", "-p", "naive")
    pids = [p["pid"] for p in cli.status()["processes"].values()] + [state["supervisor_pid"]]
    cli.json("client", "put", "k", "v", "--via", "r0")
    cli.run("down")
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    run = Path(state["run_dir"])
    for name in ("lab.json", "events.jsonl", "history.jsonl", "summary.json", "broker.jsonl"):
        assert (run / name).exists(), name
    for proc in ("router", "broker", "r0", "r1", "r2"):
        assert (run / "logs" / f"{proc}.log").exists()
    assert (run / "data" / "r0" / "wal.log").stat().st_size > 0
    assert "r0" in (run / "history.jsonl").read_text()
    assert not (cli.lab_dir / "state.json").exists()


def test_sigkill_of_the_supervisor_takes_every_lab_process_with_it(cli: CLI) -> None:
    state = cli.up("-n", "3", "-p", "naive")
    children = [p["pid"] for p in cli.status()["processes"].values()]
    assert len(children) == 5
    os.kill(state["supervisor_pid"], signal.SIGKILL)
    t0 = time.monotonic()

    def all_gone() -> bool:
        return not any(
            psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in children
        )

    wait_until(all_gone, timeout=2.0, interval=0.01)
    assert time.monotonic() - t0 < slack(2.0)
    # The stale state file does not block a new lab.
    assert (cli.lab_dir / "state.json").exists()
    cli.up("-n", "3", "-p", "naive")
    assert cli.status()["supervisor_pid"] != state["supervisor_pid"]


def test_second_up_on_the_same_lab_dir_is_refused(cli: CLI) -> None:
    cli.up("-n", "3", "-p", "naive")
    second = cli.run("up", "-d", "-n", "3", "-p", "naive", check=False)
    assert second.returncode == 2
    assert second.stderr.startswith("error: a lab is already running in")
    assert len(second.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("n", [1, 5])
def test_other_sizes_start_and_report(cli: CLI, n: int) -> None:
    cli.up("-n", str(n), "-p", "naive")
    status = cli.status()
    assert [x["id"] for x in status["nodes"]] == [f"r{i}" for i in range(n)]
    assert status["leaders"] == ["r0"]
