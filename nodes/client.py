"""Client endpoints: send one request through the router and wait for its reply.

Used by `labctl client ...` and by workload processes. A client is an endpoint on the data
plane like any replica, so faults on links to and from clients apply to it too.
"""

from __future__ import annotations

import os
import time
import uuid

import zmq

from nodes.process import data_endpoint
from nodes.wire import Codec, WireError
from protocols.base import ClientReply, ClientRequest, Command


class Endpoint:
    """A DEALER on the router under `name`; replies are matched by request id."""

    def __init__(
        self,
        ctx: zmq.Context,
        router: str,
        name: str | None = None,
        secret: bytes | None = None,
    ) -> None:
        self.name = name or f"cli-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.codec = Codec()
        self.sock = data_endpoint(ctx, router, self.name, secret=secret)

    def send(self, node: str, request: ClientRequest) -> None:
        self.sock.send_multipart([node.encode(), self.codec.encode(request)])

    def wait(self, request_id: str, timeout: float) -> ClientReply | None:
        """The reply to `request_id`, or None after `timeout` seconds; strays are skipped."""
        deadline = time.monotonic() + timeout
        while (remaining_ms := int((deadline - time.monotonic()) * 1000)) > 0:
            if not self.sock.poll(remaining_ms):
                return None
            frames = self.sock.recv_multipart()
            if len(frames) == 2:
                try:
                    msgs, _ = self.codec.decode_all(frames[1])  # a Bundle holds several
                except WireError:
                    msgs = []
                for msg in msgs:
                    if isinstance(msg, ClientReply) and msg.request_id == request_id:
                        return msg
        return None

    def call(self, node: str, command: Command, read_mode: str = "log", timeout: float = 1.0):
        self.send(node, ClientRequest(command, read_mode))
        return self.wait(command.request_id, timeout)

    def call_quorum(
        self,
        nodes: list[str],
        command: Command,
        quorum: int,
        read_mode: str = "log",
        timeout: float = 1.0,
    ) -> tuple[ClientReply | None, list[str]]:
        """Send to every node in `nodes`; the reply `quorum` of them agree on (status, seq,
        value, error) and who agreed, or (None, []) after `timeout` (PBFT's f+1 rule)."""
        request = ClientRequest(command, read_mode)
        for node in nodes:
            self.send(node, request)
        said: dict[str, tuple] = {}
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            reply = self.wait(command.request_id, left)
            if reply is None:
                break
            key = (reply.status, reply.seq, reply.value, reply.error)
            said[reply.node] = key
            agreed = sorted(n for n, k in said.items() if k == key)
            if len(agreed) >= quorum:
                return reply, agreed
        return None, []

    def close(self) -> None:
        self.sock.close(0)


def new_request_id(client: str) -> str:
    return f"{client}:{uuid.uuid4().hex[:12]}"
