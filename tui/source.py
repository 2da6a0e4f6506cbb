"""Where the dashboard's data comes from, and where its actions go: a `Source`.

`LiveSource` is a real lab, reached only through labctl's client API (`Lab.find`,
`Lab.status`, `Lab.fault`, `Lab.down`, `api.up`), plus the lab's telemetry PUB socket and
its run record (events.jsonl for the backlog when attaching, history.jsonl for latency).
`tui.fake.FakeSource` implements the same shape from canned data, which is how tests and
snapshots get a dashboard that looks the same on every run.

Every method but `feed` is blocking and is called from a thread worker, never from the UI
thread. Failures are `LabError`s with a message fit for a notification.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
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
    """A subscription to one lab's telemetry (see tui.telemetry.ZmqFeed)."""

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


def keeps_mutation(name: Any) -> str | None:
    """The mutation a protocol swap keeps: a lab-wide one (broker, workload), not one of
    the old protocol's (the new protocol has none of that name)."""
    from labctl.mutants import lab_wide

    if isinstance(name, str) and any(m.name == name for m in lab_wide()):
        return name
    return None


def swap_note(old: Any, kept: str | None) -> str:
    """What a swap did with the lab's mutation, for the notification."""
    if kept:
        return f"mutation {kept} kept"
    if isinstance(old, str) and old:
        return f"mutation {old} cleared (it belongs to the old protocol)"
    return ""


class LiveSource:
    """A real lab in `lab_dir`."""

    def __init__(self, lab_dir: str | Path | None) -> None:
        from labctl import labdir

        self.lab_dir = labdir.resolve(lab_dir)
        self.home_dir = self.lab_dir  # where to come back to after a scenario
        self._lab: Any = None
        # Held while the lab is being replaced (swap): a poll then waits for the new lab
        # instead of asking the old supervisor, which would never answer.
        self._swapping = threading.Lock()
        self._procs: dict[int, psutil.Process] = {}
        self._history_path: Path | None = None
        self._history_pos = 0
        self._history_rest = b""

    # -- reading -------------------------------------------------------------------------

    def now(self) -> float:
        return time.monotonic()

    def lab(self) -> Any:
        """The lab running now; re-read from the lab dir so a new lab there is noticed."""
        from labctl.api import Lab

        lab = Lab.find(self.lab_dir)
        if self._lab is None or self._lab.state != lab.state:
            self._lab = lab
        return self._lab

    def status(self) -> dict[str, Any]:
        with self._swapping:
            answer = self.lab().call("status", timeout=STATUS_TIMEOUT)
        answer.pop("ok", None)
        return answer

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
        from tui.telemetry import ZmqFeed

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
        return self._lab_config().get("parent_pid") == os.getpid()

    def _lab_config(self) -> dict[str, Any]:
        try:
            run_dir = Path(self.lab().state["run_dir"])
            return json.loads((run_dir / "lab.json").read_text()).get("config", {})
        except (OSError, ValueError, KeyError, LabError):
            return {}

    # -- acting ----------------------------------------------------------------------------

    def fault(self, spec: dict[str, Any]) -> dict[str, Any]:
        from faults.model import FaultError, parse_fault

        try:
            parse_fault(spec)  # a malformed duration is reported before anything is sent
        except FaultError as e:
            raise LabError(str(e)) from None
        return self.lab().fault(spec)

    def order(self, node: str, user: str, side: str, qty: int) -> dict[str, Any]:
        """One order through the fault router, as `labctl client order --via NODE` sends it."""
        import zmq

        from nodes.client import Endpoint, new_request_id
        from protocols.base import Command, Order

        lab = self.lab()
        name = f"dash-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        endpoint = Endpoint(zmq.Context.instance(), lab.state["router"], name, secret=lab.secret)
        order = Order(
            order_id=f"o-{uuid.uuid4().hex[:10]}", user=user, side=side, qty=qty, symbol="ALPHA"
        )
        command = Command(
            request_id=new_request_id(endpoint.name),
            client=endpoint.name,
            op="order",
            key="ALPHA",
            value=f"{user}:{side}:{qty}",
            order=order,
        )
        base = {"process": endpoint.name, "node": node, "request_id": command.request_id}
        t0 = time.monotonic()
        _record(lab, {"type": "invoke", "t": t0, **base, "op": "order", "key": "ALPHA",
                      "value": command.value})  # fmt: skip
        try:
            reply = endpoint.call(node, command, "log", 1.0)
        finally:
            endpoint.close()
        t1 = time.monotonic()
        if reply is None:
            out: dict[str, Any] = {"status": "timeout", "node": node}
            kind = "info"  # it may still have happened
        else:
            out = {"status": reply.status, "node": reply.node}
            if reply.status == "not_leader":
                out["leader"] = reply.leader
            else:
                out.update(term=reply.term, seq=reply.seq)
            if reply.error:
                out["error"] = reply.error
            kind = "ok" if reply.status == "ok" else "fail"
        _record(lab, {"type": kind, "t": t1, **base, "op": "order", "reply": out})
        out["ms"] = round((t1 - t0) * 1000, 1)
        return out

    def down(self) -> dict[str, Any]:
        return self.lab().down()

    def swap(self, protocol: str) -> dict[str, Any]:
        from labctl import api
        from labctl.cli.lab import lab_config

        lab = self.lab()
        doc = lab.status()
        old = self._lab_config()
        # Options belong to the old protocol; the new one starts with its defaults. So do
        # its mutations: a broker or workload mutation (any protocol's) is kept, one of the
        # old protocol is cleared, and the answer says which.
        kept = keeps_mutation(old.get("mutate"))
        config = lab_config(
            protocol, len(doc["nodes"]), int(doc.get("seed", 42)), {}, bool(old.get("fencing")),
            kept,
        )  # fmt: skip
        foreground = old.get("parent_pid") == os.getpid()
        with self._swapping:
            answer = lab.down()
            self._lab = None
            new = api.up(self.lab_dir, config, foreground_pid=os.getpid() if foreground else None)
            self._lab = new
        return {"old_run_dir": answer.get("run_dir", ""), "new_run_dir": new.state["run_dir"],
                "note": swap_note(old.get("mutate"), kept),
                "warnings": api.config_warnings(config)}  # fmt: skip

    def workload(self, action: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
        fields: dict[str, Any] = {"action": action}
        if spec is not None:
            fields["spec"] = spec
        return self.lab().call("workload", timeout=10.0, **fields)

    def scenario(
        self, name: str, protocol: str, fresh: bool, attached: Callable[[str], Any]
    ) -> dict[str, Any]:
        from labctl import api, labdir
        from labctl.cli.lab import lab_config
        from labctl.scenario import runner
        from labctl.scenario.format import ScenarioError
        from labctl.scenario.library import resolve

        try:
            sc = resolve(name, protocol)
        except ScenarioError as e:
            raise LabError(str(e)) from None
        home = self.home_dir
        try:
            old = self.lab()
        except LabError:
            old = None  # nothing runs here now: the scenario simply starts
        fencing = bool(self._lab_config().get("fencing")) if old is not None else False
        foreground = old is not None and self._lab_config().get("parent_pid") == os.getpid()
        # The fresh lab afterwards is the user's lab again (protocol, size, seed, options),
        # not the scenario's: a user watching 5 replicas gets 5 back.
        mine = self._lab_config() if old is not None else {}
        if old is not None and not mine:
            doc = old.status()
            mine = {"protocol": doc["protocol"], "nodes": len(doc["nodes"]), "seed": doc["seed"]}
        result: dict[str, Any] = {}
        was_quiet = runner._quiet.is_set()
        runner._quiet.set()  # the dashboard owns the terminal: the runner prints nothing
        try:
            with self._swapping:
                if old is not None:
                    old.down()
                self._lab = None
            iso = runner.isolated_dir(sc, str(home))

            def play() -> None:
                try:
                    result["out"] = runner.execute(sc, str(home))
                except Exception as e:  # reported by the worker, never lost in this thread
                    result["crash"] = e

            thread = threading.Thread(target=play, name=f"scenario-{name}", daemon=True)
            thread.start()
            deadline = time.monotonic() + api.UP_TIMEOUT
            while labdir.read_state(iso) is None and thread.is_alive():
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)  # the scenario's lab has not written its state file yet
            if thread.is_alive() and labdir.read_state(iso) is not None:
                with self._swapping:
                    self.lab_dir, self._lab = iso, None
                attached(str(iso))
            thread.join()
        finally:
            with self._swapping:
                self.lab_dir, self._lab = home, None
            if not was_quiet:
                runner._quiet.clear()
        if "crash" in result:
            raise LabError(f"scenario {name} failed: {result['crash']}")
        _code, summary = result["out"]
        out: dict[str, Any] = {"summary": summary, "restarted": None, "error": None}
        if fresh:
            config = lab_config(
                str(mine.get("protocol", sc.protocol)), int(mine.get("nodes", sc.nodes)),
                int(mine.get("seed", sc.seed)), dict(mine.get("options") or {}), fencing,
            )  # fmt: skip
            try:
                with self._swapping:
                    new = api.up(home, config, foreground_pid=os.getpid() if foreground else None)
                    self._lab = new
                out["restarted"] = new.state["run_dir"]
            except LabError as e:
                out["error"] = str(e)
        return out


def _record(lab: Any, record: dict[str, Any]) -> None:
    """Write one record to the run's history; losing it must not lose the order's answer."""
    try:
        lab.call("history", record=record, timeout=2.0)
    except LabError:
        pass


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
