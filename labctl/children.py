"""Spawning and stopping the lab's processes.

Every child is started with psutil in its own session (so its process group can be signalled
as one, and a Ctrl-C in the user's terminal reaches only the CLI), with its output in a
per-process log of the run directory, and told the supervisor's pid so it dies with it.
Stopping escalates: SIGTERM to the group, a grace period, then SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil


@dataclass
class Child:
    name: str
    kind: str  # replica | router | broker | client | service
    argv: list[str]
    log_path: Path
    proc: psutil.Popen | None = None
    state: str = "stopped"  # starting | running | paused | stopped
    control: str | None = None  # its control endpoint, once it reported ready
    paused_until: float | None = None
    exit_code: int | None = None
    starts: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def spawn(self, extra: tuple[str, ...] = ()) -> None:
        """Start the process; `extra` arguments are for this start only (the lab's start
        barrier: a restart later runs `argv` as it is, and does not wait for one)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        try:
            self.proc = psutil.Popen(
                [*python_command(), *self.argv, *extra],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
                close_fds=True,
            )
        finally:
            log.close()
        self.state = "starting"
        self.control = None
        self.exit_code = None
        self.paused_until = None
        self.starts += 1

    def alive(self) -> bool:
        if self.proc is None:
            return False
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the child's whole process group, now (the `kill` fault, and cleanup)."""
        if self.proc is None:
            return
        _signal_group(self.proc.pid, signal.SIGKILL)
        try:
            self.exit_code = self.proc.wait(timeout=2)
        except psutil.TimeoutExpired:
            pass
        self.state = "stopped"
        self.paused_until = None

    def suspend(self) -> None:
        assert self.proc is not None
        # SIGSTOP to the group: a GC pause, for real (an external replica's program too)
        _signal_group(self.proc.pid, signal.SIGSTOP)
        self.state = "paused"

    def resume(self) -> None:
        assert self.proc is not None
        _signal_group(self.proc.pid, signal.SIGCONT)
        self.state = "running"
        self.paused_until = None


def last_line(path: Path, limit: int = 4096) -> str:
    """The last non-empty line of a child's log (what it said before it died)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            lines = [ln for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    return lines[-1][:500] if lines else "no output"


def python_command() -> list[str]:
    """How every lab process is started: this interpreter, with -P so `python -m` does not
    put the current directory first on sys.path (a `labctl/` or `nodes/` folder where the
    user happens to be would shadow the installed modules)."""
    return [sys.executable, "-P"]


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # the child leads its own session, so its pgid is its pid
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def stop_all(children: list[Child], grace: float = 1.0) -> None:
    """SIGTERM every live child (resuming paused ones so they can act on it), wait up to
    `grace` seconds, then SIGKILL the groups of whoever is left."""
    live = [c for c in children if c.alive()]
    for c in live:
        assert c.proc is not None
        if c.state == "paused":
            _signal_group(c.proc.pid, signal.SIGCONT)
        _signal_group(c.proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for c in live:
        assert c.proc is not None
        try:
            c.exit_code = c.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except psutil.TimeoutExpired:
            c.kill()
        c.state = "stopped"
