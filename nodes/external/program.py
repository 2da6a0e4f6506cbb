"""Starting the user's program: its command line, environment, clock and stderr.

The program is the adapter's child in the adapter's process group (so the supervisor's
SIGSTOP, SIGTERM and SIGKILL of the group reach both), dies with the adapter
(PR_SET_PDEATHSIG), writes its stderr straight to `logs/<node>.stderr.log` (Maelstrom
programs log there; the adapter quotes the last lines when the program misbehaves), and
runs under libfaketime when the lab can skew its clock that way. libfaketime works by
LD_PRELOAD, so it reaches only programs that read the time through libc: a Go binary
reads it through the vDSO itself, and a statically linked one loads no preload at all.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import shlex
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path

FAKETIME_LIBS = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
)
_PT_INTERP = 3
_GO_MARKER = b"\xff Go buildinf:"


class ProgramError(ValueError):
    """A command line that cannot be run: one line for the user."""


def split_command(command: str) -> list[str]:
    """The argv of `command` (shell-style quoting, no shell), its program found on PATH."""
    try:
        argv = shlex.split(command)
    except ValueError as e:
        raise ProgramError(f"cannot parse the node command {command!r}: {e}") from None
    if not argv:
        raise ProgramError("the node command is empty")
    exe = shutil.which(argv[0])
    if exe is None:
        raise ProgramError(f"node command: no such program {argv[0]!r} (not found on PATH)")
    return argv


def faketime_lib() -> str | None:
    for path in FAKETIME_LIBS:
        if os.path.exists(path):
            return path
    return None


def clock_problem(argv: list[str]) -> str | None:
    """Why clock faults cannot reach this program, or None when libfaketime can skew it."""
    if faketime_lib() is None:
        return "libfaketime is not installed (Debian: apt-get install libfaketime)"
    name = os.path.basename(argv[0])
    if name == "go":
        return ("`go run` builds a Go binary, and Go reads the clock through the vDSO, "
                "not libc, so libfaketime cannot skew it")  # fmt: skip
    exe = shutil.which(argv[0])
    kind = _elf_kind(exe) if exe else None
    if kind == "go":
        return (f"{exe} is a Go binary: Go reads the clock without libc, so libfaketime "
                "cannot skew it")  # fmt: skip
    if kind == "static":
        return (f"{exe} is statically linked: it loads no LD_PRELOAD library, so "
                "libfaketime cannot skew it")  # fmt: skip
    return None


def _elf_kind(path: str) -> str | None:
    """"go", "static" or "dynamic" for an ELF executable; None for a script or unreadable."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or len(head) < 64:
                return None
            is64 = head[4] == 2
            endian = "<" if head[5] == 1 else ">"
            if is64:
                phoff, = struct.unpack_from(endian + "Q", head, 32)
                phentsize, phnum = struct.unpack_from(endian + "HH", head, 54)
            else:
                phoff, = struct.unpack_from(endian + "I", head, 28)
                phentsize, phnum = struct.unpack_from(endian + "HH", head, 42)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
            interp = any(
                struct.unpack_from(endian + "I", table, i * phentsize)[0] == _PT_INTERP
                for i in range(phnum)
                if (i + 1) * phentsize <= len(table)
            )
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                if m.find(_GO_MARKER) >= 0:
                    return "go"
    except (OSError, ValueError, struct.error):
        return None
    return "dynamic" if interp else "static"


def write_faketime(path: Path, offset: float, drift: float) -> None:
    """libfaketime's spec for the program: `+OFFSET xRATE` (re-read within a second).
    libfaketime scales the program's sleeps by the rate too, and counts the rate from the
    program's start, so a drift set later moves the clock by drift x the program's age."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{offset:+.6f} x{1.0 + drift:.6f}\n")
    os.replace(tmp, path)  # the program never reads half a spec


def die_with_this_process() -> None:
    """A pre-exec hook: the child gets SIGKILL when the process that started it dies
    (Linux; elsewhere nothing). Runs in the child between fork and exec."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def spawn(argv: list[str], stderr_path: Path, faketime_file: Path | None) -> subprocess.Popen:
    """Start the program with pipes on stdin and stdout. Call before any thread exists
    (the pre-exec hook must not run in a forked multi-threaded process)."""
    env = dict(os.environ)
    env.pop("PYTHONUNBUFFERED", None)  # the lab's, not the program's
    lib = faketime_lib()
    if faketime_file is not None and lib is not None:
        write_faketime(faketime_file, 0.0, 0.0)
        env.update(
            LD_PRELOAD=":".join(p for p in (lib, env.get("LD_PRELOAD", "")) if p),
            FAKETIME_TIMESTAMP_FILE=str(faketime_file),
            # A clock fault reaches the program within 1 s. (FAKETIME_XRESET, which would
            # make a new rate count from now, also freezes the offset: not used.)
            FAKETIME_CACHE_DURATION="1",
        )
    stderr_path.parent.mkdir(parents=True, exist_ok=True)
    with open(stderr_path, "ab") as err:
        return subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, bufsize=0,
            env=env, close_fds=True, preexec_fn=die_with_this_process,
        )  # fmt: skip


def stderr_tail(path: Path, lines: int = 8, limit: int = 16384) -> list[str]:
    """The last `lines` lines of the program's stderr log (at most `limit` bytes read)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            data = f.read()
    except OSError:
        return []
    text = data.decode("utf-8", "replace").splitlines()
    return [ln[:300] for ln in text if ln.strip()][-lines:]
