"""Run records as a user reads them: `runs/latest`, `labctl check latest`, `runs list` and
`prune` with sizes, wall-clock events, `wal dump`, node logs with content, and a status
that shows violations; `labctl up` without a terminal prints its table live."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.conftest import CLI, slack, wait_until


def test_latest_check_runs_list_prune_events_and_wal_dump(cli: CLI) -> None:
    first = cli.up("-n", "3", "-p", "naive")["run_dir"]
    cli.run("down")
    cli.up("-n", "3", "-p", "naive")
    cli.run("fault", "partition", "--from", "r0", "--to", "r1,r2")
    wait_until(lambda: len(cli.status()["leaders"]) == 3)
    text = cli.run("status").stdout
    assert "3 LEADERS: r0, r1, r2" in text and "split-brain" in text  # not only in --json
    assert "two leaders in term 1" in text or "3 leaders in term 1" in text
    cli.run("client", "put", "k", "asha-100", "--via", "r1")
    cli.run("down")
    latest = (cli.lab_dir / "runs" / "latest").resolve()
    assert latest != first and latest.parent == cli.lab_dir / "runs"

    check = cli.run("check", "latest", check=False)
    assert check.returncode == 1 and "split-brain" in check.stdout
    assert check.stdout.strip().endswith("violations") and latest.name in check.stdout

    rows = cli.json("runs", "list")
    assert [r["name"] for r in rows][-1] == latest.name and all(r["bytes"] > 0 for r in rows)
    assert rows[-1]["violations"] and rows[0]["violations"] == 0
    assert "KB" in cli.run("runs", "list").stdout

    events = cli.run("runs", "events", "latest", "--kind", "fault").stdout.splitlines()
    assert events and events[0].startswith(time.strftime("%Y-")) and "partition" in events[0]

    dump = cli.run("wal", "dump", str(latest / "data" / "r1")).stdout
    assert "asha-100" in dump  # the value the user wrote, decoded from the binary WAL

    for name in ("r0", "router", "broker"):
        log = (latest / "logs" / f"{name}.log").read_text()
        assert log.strip(), name  # not an empty file
    assert "became_leader" in (latest / "logs" / "r1.log").read_text()  # self-promoted

    pruned = cli.json("runs", "prune", "--keep", "1")
    assert pruned["deleted"] == [os.path.basename(first)] and pruned["bytes_freed"] > 0
    assert [r["name"] for r in cli.json("runs", "list")] == [latest.name]
    assert (cli.lab_dir / "runs" / "latest").resolve() == latest


def test_up_without_a_terminal_prints_status_as_it_changes(cli: CLI) -> None:
    env = dict(os.environ, LABCTL_DIR=str(cli.lab_dir))
    proc = subprocess.Popen(
        [sys.executable, "-m", "labctl.cli.main", "up", "-n", "3", "-p", "naive"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        text=True,
    )  # fmt: skip
    try:
        first = proc.stdout.readline()  # arrives while the lab runs, not at Ctrl-C
        assert "naive · 3 replicas" in first
        wait_until(lambda: (cli.lab_dir / "state.json").exists())
        cli.track()
        cli.run("fault", "pause", "r2")
        deadline = time.monotonic() + slack(5)
        seen = ""
        while "paused" not in seen and time.monotonic() < deadline:
            seen += proc.stdout.readline()  # printed again because the picture changed
        assert "paused" in seen
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=slack(30))
    assert proc.returncode in (0, 130) and "lab down" in err, err
    assert json.loads((cli.lab_dir / "runs" / "latest" / "summary.json").read_text())
