"""Helper processes of the benchmarks: spawned in their own sessions, always killed."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from typing import Any

import psutil

from labctl.children import python_command


def say(msg: str) -> None:
    sys.stderr.write(f"  bench: {msg}\n")
    sys.stderr.flush()


# -- processes ---------------------------------------------------------------------------


class Procs:
    """Every helper process this benchmark starts; `kill_all` always runs at the end."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        kw.setdefault("stdin", subprocess.DEVNULL)
        proc = subprocess.Popen([*python_command(), *argv], start_new_session=True, **kw)
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)

    def kill_all(self) -> None:
        for p in self.procs:
            self.kill(p)
        self.procs = []


def machine_busy(at: float, duration: float) -> float:
    """The whole machine's busy CPU % (of 100 x cpus) over [at, at + duration * 0.9]."""
    time.sleep(max(0.0, at - time.monotonic()))
    m0, t0 = psutil.cpu_times(), time.monotonic()
    time.sleep(duration * 0.9)
    m1, t1 = psutil.cpu_times(), time.monotonic()
    busy = sum(m1) - sum(m0) - (m1.idle - m0.idle) - (m1.iowait - m0.iowait)
    return round(100 * busy / (t1 - t0), 1)
