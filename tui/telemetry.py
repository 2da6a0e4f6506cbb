"""The background workers that feed the dashboard: telemetry (async) and status polls (thread).

Telemetry: a SUB socket on the supervisor's PUB endpoint, read on the app's event loop
without ever blocking it: the worker sleeps (asyncio) until the next flush, then drains the
socket with non-blocking reads. The subscription leaves out the per-entry events (`applied`,
`committed`: ten thousand a second with 9 replicas under load); throughput comes from the
applied index in `node.status` instead. `node.status` and `router.links` keep only the newest
raw body per source, decoded once per flush. The UI gets one `TelemetryBatch` per flush
(10 Hz), so its work is bounded by the flush rate, not by the lab's message rate.

Status: a thread worker calls `status` through labctl.api every POLL_INTERVAL (and at once
when an action asks), samples CPU/memory of the nodes' pids and reads new history records.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec
from textual import work
from textual.message import Message
from textual.worker import Worker, get_current_worker

from labctl.errors import LabError
from tui.eventtext import NOTABLE
from tui.feed import MAX_DRAIN
from tui.messages import LabUnreachable, StatusPolled, TelemetryBatch
from tui.source import Feed, Source

FLUSH_INTERVAL = 0.1  # seconds between two batches posted to the UI (10 Hz)
POLL_INTERVAL = 0.5  # seconds between two status polls
MAX_EVENTS = 2000  # notable events kept per batch; older ones are dropped and counted

_decoder = msgspec.msgpack.Decoder(dict)


def event_key(event: dict[str, Any]) -> tuple[Any, str, str]:
    """What tells two copies of one event apart from two events (backlog vs live feed)."""
    # str(): a fault event's "src" is the list of nodes it cuts, not the emitter's name.
    return (event.get("t"), str(event.get("src")), str(event.get("kind")))


class Accumulator:
    """Folds raw [topic, body] frames into the next TelemetryBatch."""

    def __init__(self) -> None:
        self.skip: set[tuple[Any, str, str]] = set()  # events already shown from the backlog
        self._clear()

    def _clear(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.statuses: dict[str, bytes] = {}
        self.links: bytes | None = None
        self.history: list[dict[str, Any]] = []
        self.received = 0
        self.dropped = 0

    @property
    def pending(self) -> bool:
        return self.received > 0

    def add(self, topic: bytes, body: bytes) -> None:
        self.received += 1
        kind, _, src = topic.decode("utf-8", "replace").rpartition(".")
        if kind == "node.status":
            self.statuses[src] = body
        elif kind == "router.links":
            self.links = body
        elif kind == "history" or kind in NOTABLE:
            event = self._decode(body)
            if event is None:
                return
            if kind == "history":
                self.history.append(event)
            elif kind == "broker.write" and event.get("accepted", True):
                return  # one per order under load; only a rejection is news
            elif event_key(event) not in self.skip:
                self.events.append(event)
                if len(self.events) > MAX_EVENTS:
                    del self.events[: len(self.events) - MAX_EVENTS]
                    self.dropped += 1

    def take(self, t: float, replaceable: bool = True) -> TelemetryBatch:
        statuses = {n: s for n, raw in self.statuses.items() if (s := self._decode(raw))}
        links = self._decode(self.links) if self.links is not None else None
        batch = TelemetryBatch(
            t=t,
            events=self.events,
            statuses=statuses,
            links=links,
            history=self.history,
            received=self.received,
            replaceable=replaceable,
        )
        self._clear()
        return batch

    @staticmethod
    def _decode(body: bytes) -> dict[str, Any] | None:
        try:
            obj = _decoder.decode(body)
        except msgspec.DecodeError:
            return None  # garbage on the bus is the supervisor's problem, not a crash here
        return obj if isinstance(obj, dict) else None


async def stream_telemetry(
    source: Source, post: Callable[[Message], Any], flush: float = FLUSH_INTERVAL
) -> None:
    """Read the lab's telemetry until cancelled, posting one batch per flush interval."""
    while True:
        try:
            feed: Feed = source.feed()  # reads the lab dir's state file: quick, no sockets
            break
        except LabError:
            await asyncio.sleep(0.5)  # no lab yet (or between two): the poller says so
    acc = Accumulator()
    try:
        backlog = await asyncio.to_thread(source.backlog)
        if backlog:
            acc.skip = {event_key(e) for e in backlog}
            post(TelemetryBatch(t=source.now(), events=backlog))
        next_flush = time.monotonic() + flush
        while True:
            frames, flush_now = await feed.receive(max(0.0, next_flush - time.monotonic()))
            for topic, body in frames:
                acc.add(topic, body)
            if flush_now or time.monotonic() >= next_flush:
                if acc.pending:
                    post(acc.take(source.now(), replaceable=not flush_now))
                next_flush = time.monotonic() + flush
            if len(frames) >= MAX_DRAIN:
                await asyncio.sleep(0)  # a flood: let the UI breathe between drains
    finally:
        feed.close()


def poll_status(
    source: Source,
    post: Callable[[Message], Any],
    interval: float | None,
    wake: threading.Event,
    worker: Worker[Any],
) -> None:
    """Poll `status` until the worker is cancelled (once, when `interval` is None)."""
    while not worker.is_cancelled:
        wake.clear()
        try:
            doc = source.status()
            usage = source.usage(doc)
            history = source.history(doc)
        except LabError as e:
            post(LabUnreachable(str(e)))
        else:
            post(StatusPolled(t=source.now(), doc=doc, usage=usage, history=history))
        if interval is None:
            return
        wake.wait(interval)


class TelemetryWorkers:
    """Mixed into the app: starts and restarts the two workers that feed its model."""

    source: Source
    poll_interval: float | None
    _wake_poll: threading.Event
    post_message: Callable[[Message], bool]

    @work(exclusive=True, exit_on_error=False, group="telemetry", name="telemetry")
    async def start_feed(self) -> None:
        await stream_telemetry(self.source, self.post_message)

    @work(thread=True, exclusive=True, exit_on_error=False, group="status", name="status")
    def start_poller(self) -> None:
        poll_status(
            self.source, self.post_message, self.poll_interval, self._wake_poll,
            get_current_worker(),
        )  # fmt: skip

    def poll_now(self) -> None:
        """Ask for a status poll at once (after an action), instead of at the next interval."""
        self._wake_poll.set()
