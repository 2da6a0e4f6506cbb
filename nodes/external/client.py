"""A one-shot Maelstrom client endpoint: one request to one external replica, its reply.

Used by `labctl client` on a lab of external nodes. The endpoint is a DEALER on the router
like any client (`cli-<pid>-<rand>`), so link faults that name clients apply to it.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import msgspec
import zmq

from nodes.external import names
from nodes.process import data_endpoint

_decode = msgspec.json.Decoder(names.Envelope).decode


def call(ctx: zmq.Context, router: str, node: str, body: dict[str, Any], timeout: float,
         secret: bytes | None = None) -> tuple[str, dict[str, Any] | None]:  # fmt: skip
    """Send `body` (msg_id is added) to replica `node`; (endpoint name, reply body or None).
    `secret` is the lab's (labctl/api.py reads it): without it the router refuses us."""
    name = f"cli-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    sock = data_endpoint(ctx, router, name, secret=secret)
    try:
        body = {**body, "msg_id": 1}
        msg = {"src": name, "dest": names.to_program(node), "body": body}
        sock.send_multipart([node.encode(), msgspec.json.encode(msg)])
        deadline = time.monotonic() + timeout
        while (left := int((deadline - time.monotonic()) * 1000)) > 0:
            if not sock.poll(left):
                break
            frames = sock.recv_multipart()
            if len(frames) != 2:
                continue
            try:
                reply = msgspec.json.decode(_decode(frames[1]).body)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
            if isinstance(reply, dict) and reply.get("in_reply_to") == 1:
                return name, reply
        return name, None
    finally:
        sock.close(0)
