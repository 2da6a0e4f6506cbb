"""Fixtures for tests that run real labs: the CLI as a user runs it, and cleanup that holds
even when a test fails (every process the lab started is SIGKILLed at teardown).

Time in tests: the suite must pass on a laptop doing other work (both cores busy). A test
waits for behaviour (`wait_until`), never for a fixed time, and every deadline a test
names is nominal: `wait_until` and `slack()` stretch it by SLACK (4x, or
$LABCTL_TEST_SLACK). Precision (how close a delay is to what was asked) is measured by
benchmarks (`labctl bench core`), not asserted here."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

SLACK = float(os.environ.get("LABCTL_TEST_SLACK", "4"))


def slack(seconds: float) -> float:
    """A nominal time limit stretched for a loaded machine."""
    return seconds * SLACK


class CLI:
    """Runs `labctl` in a subprocess against one lab dir."""

    def __init__(self, lab_dir: Path) -> None:
        self.lab_dir = lab_dir
        self.pids: set[int] = set()

    def run(
        self, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        env = dict(os.environ, LABCTL_DIR=str(self.lab_dir))
        # As from a user's shell: no lab key in the environment (this test's own sockets
        # have it, see up()). The CLI must find the secret in the lab dir by itself; with
        # the key inherited, `labctl client` on an external lab passed here and failed
        # for every user.
        env.pop("LABCTL_LAB_KEY", None)
        proc = subprocess.run(
            [sys.executable, "-m", "labctl.cli.main", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"labctl {' '.join(args)} exited {proc.returncode}\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    def secret(self) -> bytes:
        """The running lab's secret: what a test's own sockets authenticate with."""
        from nodes import auth

        return auth.read_secret(self.lab_dir)

    def json(self, *args: str, check: bool = True) -> Any:
        return json.loads(self.run(*args, "--json", check=check).stdout)

    def up(self, *args: str) -> dict[str, Any]:
        from nodes import auth

        self.run("up", "-d", *args)
        self.track()
        # This test's own sockets (nodes.process helpers, raw ones through auth.as_client
        # with auth.env_secret()) authenticate with the lab's secret, as a lab process does.
        os.environ[auth.ENV] = self.secret().hex()
        return self.state()

    def state(self) -> dict[str, Any]:
        return json.loads((self.lab_dir / "state.json").read_text())

    def status(self) -> dict[str, Any]:
        doc = self.json("status")
        self.pids.update(p["pid"] for p in doc["processes"].values() if p["pid"])
        return doc

    def track(self) -> None:
        """Remember every process of the lab so teardown can kill what is left."""
        try:
            sup = psutil.Process(self.state()["supervisor_pid"])
            self.pids.add(sup.pid)
            self.pids.update(c.pid for c in sup.children(recursive=True))
        except (psutil.Error, OSError, ValueError):
            pass

    def cleanup(self) -> None:
        """Stop the lab and kill whatever of it is left, whatever state the test left it
        in: a `down` that hangs or fails, an `up -d` that timed out before the lab wrote
        its state (its supervisor still starting, known only by its command line)."""
        from nodes import auth

        os.environ.pop(auth.ENV, None)
        self.track()
        if (self.lab_dir / "state.json").exists():
            try:
                self.run("down", check=False, timeout=20)
            except subprocess.TimeoutExpired:
                pass  # killed below
        self.track()
        for p in lab_processes(self.lab_dir):
            self.pids.add(p.pid)
        for pid in self.pids:
            try:
                p = psutil.Process(pid)
                p.send_signal(signal.SIGKILL)
            except psutil.Error:
                pass


def lab_processes(lab_dir: Path) -> list[psutil.Process]:
    """The lab processes whose command line points into `lab_dir` (the supervisor names
    it, and every child it spawns a path in its run), and what they spawned."""
    found: dict[int, psutil.Process] = {}
    for p in psutil.process_iter(["cmdline"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
            if str(lab_dir) in cmd and ("nodes." in cmd or "labctl" in cmd or "faults." in cmd):
                found[p.pid] = p
                found.update((c.pid, c) for c in p.children(recursive=True))
        except psutil.Error:
            continue
    found.pop(os.getpid(), None)
    return list(found.values())


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[CLI]:
    c = CLI(tmp_path / "lab")
    try:
        yield c
    finally:
        c.cleanup()


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll `predicate` until it returns something truthy; fail the test after `timeout`
    (nominal: stretched by SLACK). A passing test waits only as long as it must."""
    timeout = slack(timeout)
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out
