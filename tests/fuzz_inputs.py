"""Seeded generators of malformed inputs for every socket of a lab (tests/test_fuzz_sockets.py).

Each generator yields what one socket gets: raw garbage, msgpack of the wrong shape, and
valid-looking messages with wrong types, unknown commands and ops, spoofed sources. Every
input is checked here, with the lab's own decoders, to be one the lab must refuse: a
random spec that happens to be a valid fault (a `heal`, a `kill`) would change the lab
under test instead of probing it, so it is drawn again.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

import msgspec

import protocols
from faults.links import LinkTable
from faults.model import KINDS, FaultError, parse_fault
from labctl.intake import Rejected, decode_telemetry, history_record, workload_spec
from nodes.wire import Codec, WireError
from protocols.base import ClientRequest, Command

_enc = msgspec.msgpack.Encoder()
NAMES = ["r0", "r1", "r2", "r3", "broker", "router", "supervisor", "c0", "c7", "cli-1-ab", ""]


def junk(rng: random.Random, depth: int = 0) -> Any:
    """A value of a random wrong type: huge and negative numbers, nan, bytes, nesting."""
    choices: list[Any] = [None, True, False, 0, -1, 2**63 - 1, -(2**63), 2**64 - 1, 1e308,
                          -1e308, math.nan, math.inf, -math.inf, 0.5, "",
                          "x" * rng.randrange(1, 300), "r0", "leader", "nan", "inf", "-1s",
                          "99999999999999999999h", "abc",
                          b"\xff\x00", rng.randbytes(8)]  # fmt: skip
    if depth < 3:
        choices += [[junk(rng, depth + 1) for _ in range(rng.randrange(0, 4))],
                    {rng.choice(["a", "node", "t", "src"]): junk(rng, depth + 1)}]  # fmt: skip
    return rng.choice(choices)


def garbage(rng: random.Random) -> bytes:
    """Bytes that are not msgpack of a map, or a map whose keys msgpack allows and JSON
    does not (None, bytes, arrays), or nesting deep enough to exhaust a recursive decoder."""
    kind = rng.randrange(6)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 64))
    if kind == 1:
        return _enc.encode(junk(rng))  # a list, a number, a string...
    if kind == 2:
        return b"\x81\xc0\x01"  # {None: 1}
    if kind == 3:
        return b"\x81\x92\x01\x02\x01"  # {(1, 2): 1}
    if kind == 4:
        return b"\x91" * rng.randrange(1000, 200_000) + b"\xc0"  # [[[...]]]
    return b"\x81\xa3cmd" + rng.randbytes(rng.randrange(1, 16))  # a map torn mid-value


def _refused(check: Any, value: Any) -> bool:
    try:
        check(value)
    except (FaultError, Rejected, ValueError, TypeError):
        return True
    return False


def _draw(rng: random.Random, make: Any, check: Any) -> Any:
    while True:
        value = make(rng)
        if _refused(check, value):
            return value


def _bad_fault(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice([*KINDS, "explode", ""])
    keys = [*KINDS.get(kind, (frozenset({"node"}), ""))[0], "bogus"]
    spec = {"fault": kind}
    for key in rng.sample(keys, rng.randrange(1, len(keys) + 1)):
        spec[key] = junk(rng)
    return spec


def _supervisor_request(rng: random.Random) -> dict[str, Any]:
    cmd = rng.choice(["fault", "history", "workload", "Shutdown", "explode", "status "])
    if cmd == "fault":
        return {"cmd": "fault", "fault": _draw(rng, _bad_fault, parse_fault)}
    if cmd == "history":
        rec = {k: junk(rng) for k in rng.sample(["type", "t", "request_id", "op", "key"], 3)}
        return {"cmd": "history", "record": _draw(rng, lambda r: rec, history_record)}
    if cmd == "workload":
        spec = {k: junk(rng) for k in rng.sample(["clients", "rate", "kind", "keys", "x"], 2)}
        action = rng.choice(["start", junk(rng)])
        if action == "stop":
            action = "start"
        return {"cmd": "workload", "action": action,
                "spec": _draw(rng, lambda r: spec, workload_spec)}  # fmt: skip
    return {"cmd": cmd, **{"fault": junk(rng)}}


def _node_fault_request(rng: random.Random) -> dict[str, Any]:
    cmd = rng.choice(["clock", "disk"])
    params = ("offset", "drift") if cmd == "clock" else ("fsync", "stall")

    def make(r: random.Random) -> dict[str, Any]:
        return {k: junk(r) for k in r.sample(params, r.randrange(1, 3))}

    def check(spec: dict[str, Any]) -> None:
        parse_fault(
            {"fault": cmd, "node": "r0", **{k: v for k, v in spec.items() if v is not None}}
        )

    return {"cmd": cmd, **_draw(rng, make, check)}


def _replica_request(rng: random.Random) -> dict[str, Any]:
    pick = rng.randrange(4)
    if pick < 2:
        return _node_fault_request(rng)
    if pick == 2:
        mode = junk(rng)
        if mode in (None, "", "honest") or isinstance(mode, str):
            mode = [mode]  # never a mode some protocol has (pbft's "silent" would be obeyed)
        return {"cmd": "byzantine", "mode": mode}
    return {"cmd": rng.choice(["explode", "Shutdown", "clock2", ""]), "x": junk(rng)}


def _router_request(rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.6:

        def make(r: random.Random) -> Any:
            entry = {k: junk(r) for k in r.sample(["src", "dst", "rule"], r.randrange(0, 4))}
            return r.choice(
                [junk(r), [entry], [entry, {"src": "r0", "dst": "r1", "rule": junk(r)}]]
            )

        return {"cmd": "set_links", "links": _draw(rng, make, LinkTable.from_wire)}
    return {"cmd": rng.choice(["explode", "set_link", "shutdown", ""])}


def _broker_request(rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.5:
        on = junk(rng)
        return {"cmd": "fencing", "on": on if not isinstance(on, bool) else None}
    return {"cmd": rng.choice(["explode", "shutdown", "fence", ""]), "on": junk(rng)}


def control_inputs(rng: random.Random, n: int, socket: str) -> Iterator[list[bytes]]:
    """Multipart messages for a control socket (the DEALER side): one frame each, except
    a tenth with the wrong frame count."""
    request = {"supervisor": _supervisor_request, "replica": _replica_request,
               "router": _router_request, "broker": _broker_request}[socket]  # fmt: skip
    for i in range(n):
        if i % 10 == 9:
            yield [garbage(rng) for _ in range(rng.choice([2, 3]))]
        elif i % 3 == 0:
            yield [garbage(rng)]
        else:
            yield [_enc.encode(request(rng))]


def telemetry_inputs(rng: random.Random, n: int) -> Iterator[bytes]:
    """Telemetry the supervisor must drop: garbage, envelopes with wrong types, spoofed
    sources with data that is not JSON-plain or shadows a record's own fields."""

    def make(r: random.Random) -> bytes:
        pick = r.randrange(5)
        if pick == 0:
            return garbage(r)
        kind = r.choice(["router.ready", "node.ready", "node.status", "history", "applied.batch",
                         "broker.write", "lease", "violation", "x"])  # fmt: skip
        env: dict[Any, Any] = {"src": r.choice(NAMES), "kind": kind, "t": r.random(), "data": {}}
        if pick == 1:
            env[r.choice(["src", "kind", "t", "data"])] = junk(r)
        elif pick == 2:
            env["data"] = {r.choice(["entries", "rows", "control", "data", "type"]): junk(r)}
        elif pick == 3:
            env["data"] = {r.choice(["t", "src", "kind"]): 1, "role": "leader"}
        else:
            raw = _enc.encode({**env, "data": {"v": 1}})
            return raw[: -len(b"\x81\xa1v\x01")] + garbage(r)
        return _enc.encode(env)

    def check(raw: bytes) -> None:
        decode_telemetry(raw)

    for _ in range(n):
        yield _draw(rng, make, check)


def data_inputs(rng: random.Random, n: int, protocol: str) -> Iterator[tuple[bytes, bool]]:
    """Payloads for a replica, and whether it must answer (an unknown op is answered
    `fail`; everything else is undecodable and only counted): garbage, the protocol's own
    messages and the shared ones with fields of the wrong types, Bundles of one such."""
    cls = protocols.get(protocol)
    codec = Codec(cls.messages)
    tags = [m.__name__ for m in cls.messages] + ["ClientRequest", "BrokerWrite", "Bundle"]

    def bad_message(r: random.Random) -> bytes:
        if r.random() < 0.2:
            return garbage(r)
        msg: dict[str, Any] = {"type": r.choice(tags)}
        for _ in range(r.randrange(1, 5)):
            msg[r.choice(["term", "index", "entries", "command", "view", "seq", "ballot",
                          "items", "token", "x"])] = junk(r)  # fmt: skip
        return _enc.encode(msg)

    def counted_once(raw: bytes) -> bool:
        """Whether the replica counts `raw` as exactly one malformed message."""
        try:
            msgs, bad = codec.decode_all(raw)
        except WireError:
            return True
        return not msgs and bad == 1

    def draw(r: random.Random) -> bytes:
        while not counted_once(raw := bad_message(r)):
            pass
        return raw

    for i in range(n):
        if i % 7 == 0:
            op = rng.choice(["explode", "", "PUT", "delete", "x" * 100])
            command = Command(f"fz-{i}", "fz", op, "k", "v")
            yield codec.encode(ClientRequest(command, rng.choice(["log", "sideways"]))), True
        elif i % 7 == 1:
            bundle = _enc.encode({"type": "Bundle", "items": [draw(rng)]})
            if counted_once(bundle):
                yield bundle, False
            else:
                yield draw(rng), False
        else:
            yield draw(rng), False


def broker_inputs(rng: random.Random, n: int) -> Iterator[bytes]:
    """Payloads for the broker: BrokerWrites with fields of the wrong types, other
    messages (a broker takes nothing but BrokerWrite), garbage. Each is one malformed."""
    codec = Codec()
    for i in range(n):
        if i % 5 == 0:
            yield codec.encode(ClientRequest(Command(f"fz-{i}", "fz", "put", "k", "v")))
            continue
        while True:
            msg = {"type": "BrokerWrite", "token": junk(rng), "node": junk(rng),
                   "seq": junk(rng), "request_id": junk(rng)}  # fmt: skip
            raw = garbage(rng) if rng.random() < 0.2 else _enc.encode(msg)
            try:
                codec.decode(raw)
            except WireError:
                yield raw
                break
