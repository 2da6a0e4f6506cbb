"""The lab directory: where a running lab leaves its state file, lock, logs and runs.

`--lab-dir`, else $LABCTL_DIR, else `.labctl/` in the current directory. The state file
tells later `labctl` calls how to reach the supervisor; the lock (flock, held by the
supervisor for its whole life) is what really says "a lab runs here", so a state file left
by a supervisor that was SIGKILLed never blocks a new `up`.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"
LOCK_FILE = "supervisor.lock"


def resolve(lab_dir: str | Path | None) -> Path:
    if lab_dir is None:
        lab_dir = os.environ.get("LABCTL_DIR") or ".labctl"
    return Path(lab_dir).expanduser().absolute()


def read_state(lab_dir: Path) -> dict[str, Any] | None:
    """The state of the lab running in `lab_dir`, or None when none runs (stale or absent)."""
    try:
        state = json.loads((lab_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    pid = state.get("supervisor_pid")
    if not isinstance(pid, int) or not _alive(pid):
        return None
    return state


def _alive(pid: int) -> bool:
    return pid_alive(pid)


def pid_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting to be reaped has exited). Reads /proc where
    there is one: every CLI call asks this, and psutil costs more to import than to ask."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] != b"Z"
    except FileNotFoundError:
        return False  # gone since the kill
    except (OSError, IndexError):
        import psutil  # no /proc (macOS)

        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False


def write_state(lab_dir: Path, state: dict[str, Any]) -> None:
    tmp = lab_dir / (STATE_FILE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(state, indent=2))
    os.replace(tmp, lab_dir / STATE_FILE)


def remove_state(lab_dir: Path) -> None:
    try:
        (lab_dir / STATE_FILE).unlink()
    except FileNotFoundError:
        pass


class LabLock:
    """An exclusive flock on the lab dir, released by the kernel when its holder dies."""

    def __init__(self, lab_dir: Path) -> None:
        self.path = lab_dir / LOCK_FILE
        self.fd = -1

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = -1
            return False
        return True

    def held_by_someone(self) -> bool:
        """True when another process holds the lock (a lab is running or starting)."""
        if not self.acquire():
            return True
        self.release()
        return False

    def release(self) -> None:
        if self.fd >= 0:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = -1
