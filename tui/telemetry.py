"""The background workers that feed the dashboard: telemetry (async) and status polls (thread).

Telemetry: a SUB socket on the supervisor's PUB endpoint (zmq.asyncio, on the app's event
loop, never blocking it). High-rate traffic is folded without decoding where the topic
("<kind>.<src>") says enough: `applied` is only counted, `node.status` and `router.links`
keep the newest raw body and decode it once per flush. The UI gets one `TelemetryBatch` per
flush (10 Hz), so its work is bounded by the flush rate, not by the lab's message rate.

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
import zmq
import zmq.asyncio
from textual import work
from textual.message import Message
from textual.worker import Worker, get_current_worker

from labctl.errors import LabError
from tui.eventtext import NOTABLE
from tui.messages import LabUnreachable, StatusPolled, TelemetryBatch
from tui.source import Feed, Source

FLUSH_INTERVAL = 0.1  # seconds between two batches posted to the UI (10 Hz)
POLL_INTERVAL = 0.5  # seconds between two status polls
MAX_DRAIN = 5000  # messages read in one go before yielding to the UI's event loop
MAX_EVENTS = 2000  # notable events kept per batch; older ones are dropped and counted

# Topic prefixes the feed subscribes to: PUB filters on the publisher's side, so the
# messages nobody shows (votes, leases, broker acks...) never cross the socket.
TOPICS = (*sorted(NOTABLE), "applied", "node.status", "router.links", "history")

_decoder = msgspec.msgpack.Decoder(dict)


class Accumulator:
    """Folds raw [topic, body] frames into the next TelemetryBatch."""

    def __init__(self) -> None:
        self.skip: set[tuple[Any, Any, Any]] = set()  # events already shown from the backlog
        self._clear()

    def _clear(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.statuses: dict[str, bytes] = {}
        self.links: bytes | None = None
        self.applied: dict[str, int] = {}
        self.history: list[dict[str, Any]] = []
        self.received = 0
        self.dropped = 0

    @property
    def pending(self) -> bool:
        return self.received > 0

    def add(self, topic: bytes, body: bytes) -> None:
        self.received += 1
        kind, _, src = topic.decode("utf-8", "replace").rpartition(".")
        if kind == "applied":
            self.applied[src] = self.applied.get(src, 0) + 1
        elif kind == "node.status":
            self.statuses[src] = body
        elif kind == "router.links":
            self.links = body
        elif kind == "history" or kind in NOTABLE:
            event = self._decode(body)
            if event is None:
                return
            if kind == "history":
                self.history.append(event)
            elif (event.get("t"), event.get("src"), event.get("kind")) not in self.skip:
                self.events.append(event)
                if len(self.events) > MAX_EVENTS:
                    del self.events[: len(self.events) - MAX_EVENTS]
                    self.dropped += 1

    def take(self, t: float) -> TelemetryBatch:
        statuses = {n: s for n, raw in self.statuses.items() if (s := self._decode(raw))}
        links = self._decode(self.links) if self.links is not None else None
        batch = TelemetryBatch(
            t=t,
            events=self.events,
            statuses=statuses,
            links=links,
            applied=self.applied,
            history=self.history,
            received=self.received,
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


class ZmqFeed:
    """A SUB socket on a lab's PUB endpoint."""

    def __init__(self, endpoint: str) -> None:
        self.sock = zmq.asyncio.Context.instance().socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, 100000)
        for topic in TOPICS:
            self.sock.setsockopt(zmq.SUBSCRIBE, topic.encode() + b".")
        self.sock.connect(endpoint)
        # Draining through a plain shadow of the same socket skips one Future per message.
        self._sync = zmq.Socket.shadow(self.sock.underlying)

    async def receive(self, timeout: float) -> tuple[list[tuple[bytes, bytes]], bool]:
        frames: list[tuple[bytes, bytes]] = []
        if not await self.sock.poll(max(0, int(timeout * 1000))):
            return frames, False
        while len(frames) < MAX_DRAIN:
            try:
                parts = self._sync.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            if len(parts) == 2:
                frames.append((parts[0], parts[1]))
        return frames, False

    def close(self) -> None:
        self.sock.close(0)


async def stream_telemetry(
    source: Source, post: Callable[[Message], Any], flush: float = FLUSH_INTERVAL
) -> None:
    """Read the lab's telemetry until cancelled, posting one batch per flush interval."""
    feed: Feed = source.feed()
    acc = Accumulator()
    try:
        backlog = await asyncio.to_thread(source.backlog)
        if backlog:
            acc.skip = {(e.get("t"), e.get("src"), e.get("kind")) for e in backlog}
            post(TelemetryBatch(t=source.now(), events=backlog))
        next_flush = time.monotonic() + flush
        while True:
            frames, flush_now = await feed.receive(max(0.0, next_flush - time.monotonic()))
            for topic, body in frames:
                acc.add(topic, body)
            if flush_now or time.monotonic() >= next_flush:
                if acc.pending:
                    post(acc.take(source.now()))
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
