"""What the external node kind's processes agree on: names, message shapes, error codes.

Lab endpoints are called r0, r1, ... on the router; the programs see Maelstrom's names
n0, n1, ... Clients (c0.., cli-...) and services (lin-kv, seq-kv, lww-kv) keep their names
on both sides. "lab" is the lab's own name in a program's world: it sends `init` (and
`topology`), and a program sends it the optional role report:

    {"src": "n0", "dest": "lab", "body": {"type": "lab_role", "role": "leader", "term": 3}}

A program may send a message with a client's name as `src` (Maelstrom's network allows it,
and programs use it to proxy a client's request to the leader, who then answers the client
directly); a node's name other than its own is rewritten to its own: the transport's
sender is the truth about which node spoke.

Error codes are Maelstrom's (doc/protocol.md): the definite ones say the operation did not
happen; every other code, custom ones (1000 and up) included, is indefinite.
"""

from __future__ import annotations

import re

import msgspec

LAB = "lab"
SERVICES = ("lin-kv", "seq-kv", "lww-kv")
WORKLOADS = ("lin-kv", "broadcast", "g-counter", "unique-ids", "echo")
ROLE_REPORT = "lab_role"

# Maelstrom's error codes (doc/protocol.md), by name.
ERRORS = {
    0: "timeout", 1: "node-not-found", 10: "not-supported", 11: "temporarily-unavailable",
    12: "malformed-request", 13: "crash", 14: "abort", 20: "key-does-not-exist",
    21: "key-already-exists", 22: "precondition-failed", 30: "txn-conflict",
}  # fmt: skip
DEFINITE = frozenset({1, 10, 11, 12, 14, 20, 21, 22, 30})
KEY_DOES_NOT_EXIST = 20
PRECONDITION_FAILED = 22

_REPLICA = re.compile(r"r(\d+)\Z")
_NODE = re.compile(r"n(\d+)\Z")
_CLIENT = re.compile(r"(c\d+|cli-[A-Za-z0-9_-]+)\Z")


class Envelope(msgspec.Struct):
    """One message as it crosses stdin/stdout. The body stays raw: the data path routes on
    `dest` and forwards the bytes it was given."""

    src: str
    dest: str
    body: msgspec.Raw


class Head(msgspec.Struct):
    """The reserved keys of a body (the rest is the workload's)."""

    type: str
    msg_id: int | None = None
    in_reply_to: int | None = None


def is_definite(code: object) -> bool:
    return isinstance(code, int) and not isinstance(code, bool) and code in DEFINITE


def to_program(lab_name: str) -> str:
    """The name a program knows endpoint `lab_name` by (r3 -> n3; others unchanged)."""
    m = _REPLICA.match(lab_name)
    return f"n{m.group(1)}" if m else lab_name


def is_client(name: str) -> bool:
    return _CLIENT.match(name) is not None


def to_lab(name: str, replicas: int) -> str | None:
    """The router endpoint for a program's `dest`, or None when there is no such node."""
    m = _NODE.match(name)
    if m:
        i = int(m.group(1))
        return f"r{i}" if i < replicas and m.group(1) == str(i) else None
    if name in SERVICES or _CLIENT.match(name):
        return name
    return None
