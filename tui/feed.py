"""The live feed: a SUB socket on a lab's PUB endpoint, drained at the flush rate.

tui/telemetry.py's worker reads it (`receive`) and folds what arrives into one batch per
flush; tui/source.py's `LiveSource.feed` makes one for the lab it follows.
"""

from __future__ import annotations

import asyncio

import zmq

from nodes import auth
from tui.eventtext import NOTABLE

MAX_DRAIN = 5000  # messages read in one go before yielding to the UI's event loop

# Topic prefixes the feed subscribes to: PUB filters on the publisher's side, so the
# messages nobody shows (votes, leases, broker acks...) never cross the socket.
TOPICS = (*sorted(NOTABLE), "node.status", "router.links", "history")


class ZmqFeed:
    """A SUB socket on a lab's PUB endpoint."""

    def __init__(self, endpoint: str, secret: bytes | None = None) -> None:
        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        auth.as_client(self.sock, secret, "dashboard")
        self.sock.setsockopt(zmq.RCVHWM, 100000)
        for topic in TOPICS:
            self.sock.setsockopt(zmq.SUBSCRIBE, topic.encode() + b".")
        self.sock.connect(endpoint)
        self._behind = False  # the last drain stopped at MAX_DRAIN: drain again at once

    async def receive(self, timeout: float) -> tuple[list[tuple[bytes, bytes]], bool]:
        # Sleep on the event loop, then drain without blocking what queued meanwhile. Waking
        # per message (an asyncio poll) costs a loop turn each: a thousand broker writes a
        # second took 8% of a core; waking at the flush rate costs ten turns a second. The
        # socket's queue (RCVHWM) holds the messages in between.
        if not self._behind:
            await asyncio.sleep(timeout)
        frames: list[tuple[bytes, bytes]] = []
        while len(frames) < MAX_DRAIN:
            try:
                parts = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            if len(parts) == 2:
                frames.append((parts[0], parts[1]))
        self._behind = len(frames) >= MAX_DRAIN
        return frames, False

    def close(self) -> None:
        self.sock.close(0)
