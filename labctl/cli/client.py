"""`labctl client ...`: one operation against the lab, through the fault router.

The CLI joins the data plane as a client endpoint, so link faults that name clients apply.
It asks one node (--via; default: the node the lab sees as leader) and reports exactly what
came back: ok, not_leader (with the leader that node believes in), fail, or timeout. Exit 0
on ok, 1 otherwise. Each operation is also written to the run's history.jsonl.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from labctl.cli.common import Json, LabDir, print_json, say
from labctl.errors import LabError

app = typer.Typer(help="Send one client operation (put, get, cas, order) to a node.")

Via = Annotated[
    str | None, typer.Option("--via", help="Node to ask (name or role; default the leader).")
]
Timeout = Annotated[str, typer.Option("--timeout", help="Give up after this long.")]
ReadMode = Annotated[str, typer.Option("--read", help="Read mode: log, quorum or lease.")]


def _run(op: dict[str, Any], via: str | None, timeout: str, read_mode: str,
         lab_dir: str | None, json_out: bool) -> None:  # fmt: skip

    from faults.targets import resolve
    from labctl.api import Lab
    from nodes.client import new_request_id
    from protocols.base import READ_MODES, Command, DurationError, parse_duration

    try:
        wait = parse_duration(timeout)
    except DurationError as e:
        raise LabError(f"--timeout: {e}") from None
    if read_mode not in READ_MODES:
        raise LabError(f"--read must be one of {', '.join(READ_MODES)}, got {read_mode!r}")
    lab = Lab.find(lab_dir)
    doc = lab.status()
    replicas = [n["id"] for n in doc["nodes"]]
    status = {n["id"]: n for n in doc["nodes"]}
    from faults.model import FaultError

    try:
        if via is None:
            node = (doc.get("leaders") or replicas)[0]
        else:
            node = resolve([via], replicas=replicas, endpoints=set(replicas), status=status,
                           rng=__import__("random").Random())[0]  # fmt: skip
    except FaultError as e:
        raise LabError(str(e)) from None
    quorum, broadcast = _quorum(doc.get("protocol"), len(replicas))
    if broadcast:
        node = "all"  # PBFT: every replica gets the request, f+1 must agree on the answer
    endpoint = lab.endpoint()
    command = Command(request_id=new_request_id(endpoint.name), client=endpoint.name, **op)
    t0 = time.monotonic()
    _history(lab, {"type": "invoke", "t": t0, "process": endpoint.name, "node": node,
                   "request_id": command.request_id, "op": command.op, "key": command.key,
                   "value": command.value, "expected": command.expected})  # fmt: skip
    agreed: list[str] = []
    if broadcast:
        reply, agreed = endpoint.call_quorum(replicas, command, quorum, read_mode, wait)
    else:
        reply = endpoint.call(node, command, read_mode, wait)
    t1 = time.monotonic()
    endpoint.close()
    if reply is None:
        out: dict[str, Any] = {"status": "timeout", "node": node}
        kind = "info"  # we cannot know whether it happened
    else:
        out = {"status": reply.status, "node": reply.node}
        if reply.status == "not_leader":
            out["leader"] = reply.leader
            kind = "fail"
        else:
            out.update(term=reply.term, seq=reply.seq)
            if command.op in ("get", "cas"):
                out["value"] = reply.value
            if reply.error:
                out["error"] = reply.error
            kind = "ok" if reply.status == "ok" else "fail"
        if agreed:
            out["agreed"] = agreed  # the f+1 (or more) replicas whose replies matched
    _history(lab, {"type": kind, "t": t1, "process": endpoint.name, "node": node,
                   "request_id": command.request_id, "op": command.op, "reply": out})  # fmt: skip
    if json_out:
        print_json(out)
    else:
        detail = " ".join(f"{k}={v}" for k, v in out.items() if k not in ("status", "node"))
        typer.echo(f"{out['status']} from {out['node']} {detail} ({(t1 - t0) * 1000:.1f} ms)")
    if out["status"] != "ok":
        raise typer.Exit(1)


def _quorum(protocol: Any, replicas: int) -> tuple[int, bool]:
    """(matching replies needed, whether every replica gets the request)."""
    import protocols
    from protocols.base import client_quorum

    try:
        cls = protocols.get(str(protocol))
    except protocols.UnknownProtocol:
        return 1, False
    return client_quorum(cls, replicas), cls.byzantine_tolerant


def _history(lab: Any, record: dict[str, Any]) -> None:
    try:
        lab.call("history", record=record, timeout=2.0)
    except LabError as e:
        say(f"warning: could not record history: {e}")


@app.command()
def put(key: str, value: str, via: Via = None, timeout: Timeout = "1s",
        json_out: Json = False, lab_dir: LabDir = None) -> None:  # fmt: skip
    """Write KEY = VALUE."""
    _run({"op": "put", "key": key, "value": value}, via, timeout, "log", lab_dir, json_out)


@app.command()
def get(key: str, via: Via = None, read: ReadMode = "log", timeout: Timeout = "1s",
        json_out: Json = False, lab_dir: LabDir = None) -> None:  # fmt: skip
    """Read KEY."""
    _run({"op": "get", "key": key}, via, timeout, read, lab_dir, json_out)


@app.command()
def cas(key: str, expected: str, value: str, via: Via = None, timeout: Timeout = "1s",
        json_out: Json = False, lab_dir: LabDir = None) -> None:  # fmt: skip
    """Set KEY to VALUE only if it holds EXPECTED."""
    _run({"op": "cas", "key": key, "expected": expected, "value": value}, via, timeout, "log",
         lab_dir, json_out)  # fmt: skip


@app.command()
def order(
    user: Annotated[str, typer.Option("--user")] = "riya",
    side: Annotated[str, typer.Option("--side", help="buy or sell")] = "buy",
    qty: Annotated[int, typer.Option("--qty")] = 200,
    symbol: Annotated[str, typer.Option("--symbol")] = "ALPHA",
    via: Via = None,
    timeout: Timeout = "1s",
    json_out: Json = False,
    lab_dir: LabDir = None,
) -> None:
    """Place a trade order (the leader forwards it to the broker with its fencing token)."""
    import uuid

    from protocols.base import Order

    if side not in ("buy", "sell"):
        raise LabError(f"--side must be buy or sell, got {side!r}")
    if qty <= 0:
        raise LabError(f"--qty must be positive, got {qty}")
    o = Order(order_id=f"o-{uuid.uuid4().hex[:10]}", user=user, side=side, qty=qty, symbol=symbol)
    _run({"op": "order", "key": symbol, "value": f"{user}:{side}:{qty}", "order": o}, via, timeout,
         "log", lab_dir, json_out)  # fmt: skip
