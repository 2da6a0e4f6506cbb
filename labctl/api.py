"""The client API to a running lab, used by the CLI (and later the dashboard).

Everything outside the supervisor reaches a lab through here: find it from the lab dir's
state file, send a control request, get the one reply envelope back or a LabError.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import zmq

from labctl import labdir
from labctl.errors import LabError, LabFailed, NoLab
from nodes.process import request

UP_TIMEOUT = 30.0
MAX_NODES = 15


def lab_config(
    protocol: str,
    nodes: int | None = None,
    seed: int = 42,
    options: dict[str, Any] | None = None,
    fencing: bool = False,
) -> dict[str, Any]:
    """Validate everything a lab needs before any process starts (LabError if not)."""
    import protocols
    from protocols.base import ConfigError, decode_options

    options = dict(options or {})
    try:
        cls = protocols.get(protocol)
    except protocols.UnknownProtocol as e:
        raise LabError(str(e)) from None
    n = cls.default_nodes if nodes is None else nodes
    if not 1 <= n <= MAX_NODES:
        raise LabError(f"--nodes must be between 1 and {MAX_NODES}, got {n}")
    try:
        decode_options(cls.Options, options)
    except ConfigError as e:
        raise LabError(f"protocol {protocol!r}: {e}") from None
    return {"protocol": protocol, "nodes": n, "seed": seed, "options": options, "fencing": fencing}


def config_warnings(config: dict[str, Any]) -> list[str]:
    """What a user should hear before this lab starts (a PBFT size that is not 3f+1)."""
    import protocols

    note = protocols.get(config["protocol"]).size_warning(int(config["nodes"]))
    return [note] if note else []


class Lab:
    """A handle on the lab running in one lab dir."""

    def __init__(self, lab_dir: Path, state: dict[str, Any]) -> None:
        self.lab_dir = lab_dir
        self.state = state
        self.ctx = zmq.Context.instance()

    @classmethod
    def find(cls, lab_dir: str | Path | None) -> Lab:
        path = labdir.resolve(lab_dir)
        state = labdir.read_state(path)
        if state is None:
            raise NoLab(f"no lab is running in {path} (start one with `labctl up`)")
        return cls(path, state)

    def call(self, cmd: str, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
        answer = request(self.ctx, self.state["control"], {"cmd": cmd, **fields}, timeout)
        if answer is None:
            raise LabFailed(f"the supervisor (pid {self.state['supervisor_pid']}) did not answer")
        if not answer.get("ok"):
            code = 3 if answer.get("code") == "lab_failed" else 2
            raise LabError(str(answer.get("error", "request failed")), code)
        return answer

    def status(self) -> dict[str, Any]:
        answer = self.call("status")
        answer.pop("ok", None)
        return answer

    def fault(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self.call("fault", fault=spec, timeout=15.0)

    def settle(self, timeout: float = 5.0) -> dict[str, Any]:
        """Wait until every replica reported its role and, unless the protocol is
        leaderless (EPaxos: every role is "replica"), one of them leads; the last status.
        A lab that does not settle in `timeout` is returned as it is (a user may have cut
        it off on purpose)."""
        deadline = time.monotonic() + timeout
        while True:
            doc = self.status()
            roles = [n.get("role") for n in doc["nodes"] if n.get("state") == "running"]
            settled = all(roles) and (doc["leaders"] or all(r == "replica" for r in roles))
            if settled or time.monotonic() > deadline:
                return doc
            time.sleep(0.02)  # status polls: the first election takes one timeout or two

    def down(self, timeout: float = 10.0) -> dict[str, Any]:
        """Stop the lab and wait until the supervisor (and so every child) is gone."""
        pid = self.state["supervisor_pid"]
        answer = self.call("shutdown")
        deadline = time.monotonic() + timeout
        while _running(pid):
            if time.monotonic() > deadline:
                kill_group(pid)
                break
            time.sleep(0.005)  # not our child: no wait() to block on, so poll its state
        return answer


def _running(pid: int) -> bool:
    """True until the process has exited (a zombie waiting for init to reap it has)."""
    return labdir.pid_alive(pid)


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, 9)
    except (ProcessLookupError, PermissionError):
        pass


def up(
    lab_dir: str | Path | None,
    config: dict[str, Any],
    foreground_pid: int | None = None,
) -> Lab:
    """Start a supervisor for `config` in `lab_dir` and wait until every replica is ready.

    With `foreground_pid`, the lab dies with that process (the CLI in foreground mode)."""
    path = labdir.resolve(lab_dir)
    if labdir.read_state(path) is not None or labdir.LabLock(path).held_by_someone():
        raise LabError(f"a lab is already running in {path} (stop it with `labctl down`)")
    path.mkdir(parents=True, exist_ok=True)
    if foreground_pid is not None:
        config = {**config, "parent_pid": foreground_pid}
    import psutil

    log = open(path / "supervisor.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        proc = psutil.Popen(
            [sys.executable, "-m", "labctl.supervisor", "--lab-dir", str(path),
             "--config", json.dumps(config)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )  # fmt: skip
    finally:
        log.close()
    deadline = time.monotonic() + UP_TIMEOUT
    while time.monotonic() < deadline:
        state = labdir.read_state(path)
        if state is not None and state.get("supervisor_pid") == proc.pid:
            return Lab(path, state)
        if proc.poll() is not None:
            raise LabFailed(
                _last_error(path / "supervisor.log", proc.returncode), proc.returncode or 3
            )
        time.sleep(0.01)  # polling a file the supervisor writes once; nothing to wake on
    kill_group(proc.pid)
    raise LabFailed(f"the lab did not start within {UP_TIMEOUT:g}s; see {path / 'supervisor.log'}")


def _last_error(log: Path, code: int | None) -> str:
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        lines = []
    for ln in reversed(lines):
        if ln.startswith("error:"):
            return ln[len("error:") :].strip()
    tail = lines[-1] if lines else "no output"
    return f"the supervisor exited with code {code}: {tail} (see {log})"
