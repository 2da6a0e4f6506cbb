"""The client API to a running lab, used by the CLI (and later the dashboard).

Everything outside the supervisor reaches a lab through here: find it from the lab dir's
state file, send a control request, get the one reply envelope back or a LabError.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import zmq

from labctl import labdir
from labctl.children import python_command
from labctl.errors import LabError, LabFailed, NoLab
from nodes import auth
from nodes.process import request

UP_TIMEOUT = 30.0


class Lab:
    """A handle on the lab running in one lab dir."""

    def __init__(self, lab_dir: Path, state: dict[str, Any]) -> None:
        self.lab_dir = lab_dir
        self.state = state
        self.ctx = zmq.Context.instance()
        try:
            self.secret = auth.read_secret(lab_dir)  # every socket of the lab asks for it
        except auth.AuthError as e:
            raise LabError(str(e)) from None

    @classmethod
    def find(cls, lab_dir: str | Path | None) -> Lab:
        path = labdir.resolve(lab_dir)
        state = labdir.read_state(path)
        if state is None:
            if (path / labdir.STATE_FILE).exists() and not os.access(
                path / labdir.STATE_FILE, os.R_OK
            ):
                raise LabError(f"cannot read {path / labdir.STATE_FILE}: the lab belongs to "
                               "another user")  # fmt: skip
            raise NoLab(f"no lab is running in {path} (start one with `labctl up`)")
        return cls(path, state)

    def endpoint(self, name: str | None = None) -> Any:
        """A client endpoint on this lab's router (nodes.client.Endpoint), authenticated."""
        from nodes.client import Endpoint

        return Endpoint(self.ctx, self.state["router"], name, secret=self.secret)

    def subscriber(self, *topics: bytes) -> zmq.Socket:
        """A SUB socket on the supervisor's PUB, authenticated, subscribed to `topics`."""
        sub = self.ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        auth.as_client(sub, self.secret, "subscriber")
        for topic in topics:
            sub.setsockopt(zmq.SUBSCRIBE, topic)
        sub.connect(self.state["pub"])
        return sub

    def child_env(self) -> dict[str, str]:
        """The environment for a process this side starts on the lab (a load generator)."""
        return dict(os.environ, **auth.child_env(self.secret))

    def call(self, cmd: str, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
        answer = request(
            self.ctx, self.state["control"], {"cmd": cmd, **fields}, timeout, secret=self.secret
        )
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

    def down(self, timeout: float = 10.0) -> dict[str, Any]:
        """Stop the lab and wait until the supervisor (and so every child) is gone."""
        pid = self.state["supervisor_pid"]
        answer = self.call("shutdown")
        deadline = time.monotonic() + timeout
        killed = False
        while _running(pid):
            if time.monotonic() > deadline:
                kill_group(pid)
                killed = True
                break
            time.sleep(0.005)  # not our child: no wait() to block on, so poll its state
        run_dir = answer.get("run_dir")
        if not isinstance(run_dir, str) or not (Path(run_dir) / "summary.json").exists():
            how = f"was killed after {timeout:g}s" if killed else "stopped"
            raise LabFailed(
                f"the lab {how} without writing its summary (run record in {run_dir}; "
                f"see {self.lab_dir / 'supervisor.log'})"
            )
        return answer


def _running(pid: int) -> bool:
    """True until the process has exited (a zombie waiting for init to reap it has)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


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
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)  # the lab's record and secret are its user's alone
    if foreground_pid is not None:
        config = {**config, "parent_pid": foreground_pid}
    log = os.fdopen(os.open(path / "supervisor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                            0o600), "ab")  # fmt: skip - handed to the child
    try:
        proc = psutil.Popen(
            [*python_command(), "-m", "labctl.supervisor", "--lab-dir", str(path),
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
