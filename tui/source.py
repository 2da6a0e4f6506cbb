"""Where the dashboard's data comes from, and where its actions go: a `Source`.

`LiveSource` is a real lab, reached only through labctl: a `labctl.session.LabSession`
(status, faults, orders, workloads, and what replaces the lab: a protocol swap, a
scenario played into it, stop), plus the lab's telemetry PUB socket and its run record
(events.jsonl for the backlog when attaching, history.jsonl for latency).
`tui.fake.FakeSource` implements the same shape from canned data, which is how tests and
snapshots get a dashboard that looks the same on every run.

Every method but `feed` is blocking and is called from a thread worker, never from the UI
thread. Failures are `LabError`s with a message fit for a notification.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import psutil

from labctl.errors import LabError
from tui.eventtext import NOTABLE

STATUS_TIMEOUT = 2.0  # a supervisor that does not answer a poll in this long is shown as gone
BACKLOG_BYTES = 512 * 1024  # how much of events.jsonl to read when attaching
BACKLOG_EVENTS = 300


class Feed(Protocol):
    """A subscription to one lab's telemetry (see tui.feed.ZmqFeed)."""

    async def receive(self, timeout: float) -> tuple[list[tuple[bytes, bytes]], bool]:
        """Frames [topic, msgpack body] that arrived within `timeout` seconds, and whether
        the source wants them flushed to the UI now (a fake's step boundary)."""
        ...

    def close(self) -> None: ...


class Source(Protocol):
    lab_dir: Path

    def now(self) -> float:
        """The lab's true time (the machine's monotonic clock for a real lab)."""
        ...

    def status(self) -> dict[str, Any]: ...

    def usage(self, doc: dict[str, Any]) -> dict[str, tuple[float, float]]:
        """node -> (CPU %, resident MB) of each replica's process."""
        ...

    def history(self, doc: dict[str, Any]) -> list[dict[str, Any]]:
        """History records (invoke / ok / fail / info) written since the last call."""
        ...

    def feed(self) -> Feed: ...

    def backlog(self) -> list[dict[str, Any]]:
        """Notable events that happened before the dashboard attached."""
        ...

    def fault(self, spec: dict[str, Any]) -> dict[str, Any]: ...

    def order(self, node: str, user: str, side: str, qty: int) -> dict[str, Any]: ...

    def down(self) -> dict[str, Any]: ...

    def swap(self, protocol: str) -> dict[str, Any]:
        """End the run and start `protocol` with the same node count and seed."""
        ...

    def workload(self, action: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
        """Start (with the supervisor's workload spec) or stop the lab's client processes."""
        ...

    def scenario(
        self, name: str, protocol: str, fresh: bool, attached: Callable[[str], Any]
    ) -> dict[str, Any]:
        """End the run, play built-in scenario `name` with `protocol` in its own lab dir (the
        source reads that lab meanwhile; `attached(dir)` is called once it is up), then come
        back to the lab dir, starting a fresh lab there when `fresh`. Returns {"summary":
        the scenario's contract summary, "restarted": the fresh run dir or None, "error":
        why the fresh lab did not start, or None}."""
        ...

    def protocols(self) -> list[str]: ...

    def dies_with_us(self) -> bool:
        """True when the lab was started in the foreground by this process."""
        ...

class LiveSource:
    """A real lab in `lab_dir`, through a labctl session (labctl/session.py)."""

    def __init__(self, lab_dir: str | Path | None) -> None:
        from labctl.session import LabSession

        self.session = LabSession(lab_dir, client_prefix="dash")
        self._procs: dict[int, psutil.Process] = {}
        self._history_path: Path | None = None
        self._history_pos = 0
        self._history_rest = b""

    @property
    def lab_dir(self) -> Path:
        """The lab dir shown now (a scenario's while one plays)."""
        return self.session.lab_dir

    # -- reading -------------------------------------------------------------------------

    def now(self) -> float:
        return time.monotonic()

    def lab(self) -> Any:
        return self.session.lab()

    def status(self) -> dict[str, Any]:
        return self.session.status(timeout=STATUS_TIMEOUT)

    def usage(self, doc: dict[str, Any]) -> dict[str, tuple[float, float]]:
        out: dict[str, tuple[float, float]] = {}
        alive: dict[int, psutil.Process] = {}
        for n in doc.get("nodes", []):
            pid = n.get("pid")
            if not pid:
                continue
            try:
                # Keep one Process per pid: cpu_percent measures since the previous call.
                p = self._procs.get(pid) or psutil.Process(pid)
                cpu = p.cpu_percent(None)
                mb = p.memory_info().rss / 1e6
            except psutil.Error:
                continue
            alive[pid] = p
            out[n["id"]] = (cpu, mb)
        self._procs = alive
        return out

    def history(self, doc: dict[str, Any]) -> list[dict[str, Any]]:
        path = Path(doc.get("run_dir", "")) / "history.jsonl"
        if path != self._history_path:
            self._history_path, self._history_pos, self._history_rest = path, 0, b""
        try:
            with open(path, "rb") as f:
                f.seek(self._history_pos)
                chunk = f.read(4 * 1024 * 1024)
        except OSError:
            return []
        self._history_pos += len(chunk)
        data = self._history_rest + chunk
        lines = data.split(b"\n")
        self._history_rest = lines.pop()  # an incomplete last line waits for the next read
        return _json_lines(lines)

    def feed(self) -> Feed:
        from tui.feed import ZmqFeed

        lab = self.lab()
        return ZmqFeed(lab.state["pub"], lab.secret)

    def backlog(self) -> list[dict[str, Any]]:
        # The run record is flushed every 100 ms: wait that long so nothing that happened
        # before our subscription is in neither the file nor the feed.
        time.sleep(0.15)
        try:
            run_dir = Path(self.lab().state["run_dir"])
            with open(run_dir / "events.jsonl", "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - BACKLOG_BYTES))
                data = f.read()
        except (OSError, KeyError, LabError):
            return []
        lines = data.split(b"\n")
        if len(data) == BACKLOG_BYTES:
            lines = lines[1:]  # the first line is cut
        events = [e for e in _json_lines(lines) if e.get("kind") in NOTABLE]
        return events[-BACKLOG_EVENTS:]

    def protocols(self) -> list[str]:
        import protocols

        return protocols.available()

    def dies_with_us(self) -> bool:
        return self.session.dies_with_us()

    # -- acting ----------------------------------------------------------------------------

    def fault(self, spec: dict[str, Any]) -> dict[str, Any]:
        from faults.model import FaultError, parse_fault

        try:
            parse_fault(spec)  # a malformed duration is reported before anything is sent
        except FaultError as e:
            raise LabError(str(e)) from None
        return self.lab().fault(spec)

    def order(self, node: str, user: str, side: str, qty: int) -> dict[str, Any]:
        """One order through the fault router, as `labctl client order --via NODE` sends it
        (to every replica, f+1 replies agreeing, under a byzantine-tolerant protocol)."""
        return self.lab().order(user, side, qty, "ALPHA", via=node, timeout=1.0)

    def down(self) -> dict[str, Any]:
        return self.session.down()

    def swap(self, protocol: str) -> dict[str, Any]:
        return self.session.swap(protocol)

    def workload(self, action: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
        fields: dict[str, Any] = {"action": action}
        if spec is not None:
            fields["spec"] = spec
        return self.lab().call("workload", timeout=10.0, **fields)

    def scenario(
        self, name: str, protocol: str, fresh: bool, attached: Callable[[str], Any]
    ) -> dict[str, Any]:
        return self.session.play(name, protocol, fresh, attached)


def _json_lines(lines: Sequence[bytes]) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue  # a torn line (the writer was mid-write): skip it
        if isinstance(obj, dict):
            out.append(obj)
    return out
