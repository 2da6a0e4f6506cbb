"""The run directory: the written record of one run, readable even after a crash.

    runs/latest -> the newest run
    runs/<timestamp>-<scenario or 'lab'>-<protocol>/
        lab.json        config, seed, versions, clock (monotonic and wall read together)
        events.jsonl    telemetry, faults, violations; true time
        history.jsonl   client operations: invoke / ok / fail / info
        summary.json    written at the end
        broker.jsonl    every side effect the broker accepted or rejected
        logs/<name>.log each process's output
        data/<node>/    each replica's WAL

Events are appended as they come and flushed at least every 100 ms, so a crash loses at
most that much.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import zmq

import labctl

FLUSH_INTERVAL = 0.1


def versions() -> dict[str, str]:
    return {
        "labctl": labctl.__version__,
        "python": sys.version.split()[0],
        "pyzmq": zmq.__version__,
        "libzmq": zmq.zmq_version(),
        "msgspec": msgspec.__version__,
        "platform": platform.platform(),
    }


def _start_writeback(fd: int) -> None:
    """Hand what was just written to the disk now, in small pieces, without waiting for it.
    Left to the kernel, tens of MB of events pile up dirty and go out in one burst every
    30 s; on ext4 the replicas' fsyncs then wait behind that burst for 100 ms and more, a
    disk stall the lab never injected (bench epaxos saw it in its p99)."""
    if hasattr(os, "posix_fadvise"):  # Linux: DONTNEED starts writeback of dirty pages
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


class RunDir:
    def __init__(self, root: Path, name: str, protocol: str) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = root / f"{stamp}-{name}-{protocol}"
        n = 1
        while path.exists():
            n += 1
            path = root / f"{stamp}-{name}-{protocol}-{n}"
        self.path = path
        (path / "logs").mkdir(parents=True)
        (path / "data").mkdir()
        from labctl.runs import link_latest

        link_latest(path)
        # Binary: the encoder already makes UTF-8 JSON, no str round trip per line (the
        # supervisor writes one line per applied command per replica).
        self._events = open(path / "events.jsonl", "ab")  # noqa: SIM115 - open for the run
        self._history = open(path / "history.jsonl", "ab")  # noqa: SIM115
        self._last_flush = 0.0
        self._encoder = msgspec.json.Encoder()

    def write_lab(self, config: dict[str, Any]) -> None:
        # The pair of readings converts events' true time (monotonic) to wall-clock time.
        mono, wall = time.monotonic(), time.time()
        doc = {"config": config, "versions": versions(), "started_wall": wall,
               "clock": {"monotonic": mono, "wall": wall}}  # fmt: skip
        (self.path / "lab.json").write_text(json.dumps(doc, indent=2))

    def event(self, record: dict[str, Any]) -> None:
        self._events.write(self._encoder.encode(record) + b"\n")

    def applied_events(self, t: float, src: str, entries: list[Any]) -> int:
        """One "applied" event per entry, the same bytes as `event({"t": t, "src": src,
        "kind": "applied", **entry})`; returns how many entries were not dicts (skipped)."""
        head = self._encoder.encode({"t": t, "src": src, "kind": "applied"})[:-1]
        lines = []
        bad = 0
        for entry in entries:
            if not isinstance(entry, dict):
                bad += 1
                continue
            body = self._encoder.encode(entry)
            lines.append(head + (b"," + body[1:] if len(body) > 2 else b"}"))
        if lines:
            self._events.write(b"\n".join(lines) + b"\n")
        return bad

    def history(self, record: dict[str, Any]) -> None:
        self._history.write(self._encoder.encode(record) + b"\n")

    def maybe_flush(self, now: float) -> None:
        if now - self._last_flush >= FLUSH_INTERVAL:
            self.flush()
            self._last_flush = now

    def flush(self) -> None:
        self._events.flush()
        self._history.flush()
        for f in (self._events, self._history):
            _start_writeback(f.fileno())

    def write_summary(self, summary: dict[str, Any]) -> None:
        """summary.json, atomically. Whatever the summary holds, a file is written: a
        value JSON cannot hold becomes its text, and a summary that cannot be encoded at
        all is replaced by one that says why (`labctl down` reports a missing summary)."""
        self.flush()
        try:
            text = json.dumps(summary, indent=2, default=str)
        except (TypeError, ValueError, RecursionError) as e:
            text = json.dumps({"error": f"the summary could not be encoded: {e}"}, indent=2)
        tmp = self.path / "summary.json.tmp"
        tmp.write_text(text)
        tmp.replace(self.path / "summary.json")

    def close(self) -> None:
        self._events.close()
        self._history.close()
