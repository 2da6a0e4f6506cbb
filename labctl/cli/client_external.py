"""`labctl client ...` against a lab of external nodes (Maelstrom programs).

put, get and cas become lin-kv's write, read and cas (a value that reads as an integer is
sent as one, as Maelstrom's lin-kv workload does), recorded in history.jsonl in the lab's
kv vocabulary so `labctl check` judges them with the workload's operations; `send` sends
any Maelstrom body (echo, broadcast, add, generate, ...) and prints the reply.
"""

from __future__ import annotations

import json
import time
from typing import Any

import typer

from labctl.cli.common import print_json, say
from labctl.errors import LabError


def _value(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return text


def lin_kv_body(op: dict[str, Any]) -> dict[str, Any]:
    key = _value(op["key"])
    if op["op"] == "get":
        return {"type": "read", "key": key}
    if op["op"] == "put":
        return {"type": "write", "key": key, "value": _value(op["value"])}
    if op["op"] == "cas":
        return {"type": "cas", "key": key, "from": _value(op["expected"]),
                "to": _value(op["value"])}  # fmt: skip
    raise LabError(f"external nodes take put, get, cas and send, not {op['op']}")


def pick(lab: Any, via: str | None) -> str:
    """The replica `via` names (a name or a role; default the leader, else the first)."""
    import random

    from faults.model import FaultError
    from faults.targets import resolve
    from protocols.display import Display

    doc = lab.status()
    replicas = [n["id"] for n in doc["nodes"]]
    if via is None:
        return (doc.get("leaders") or replicas)[0]
    try:
        status = {n["id"]: n for n in doc["nodes"]}
        return resolve([via], replicas=replicas, endpoints=set(replicas), status=status,
                       rng=random.Random(), display=Display.of_status(doc))[0]  # fmt: skip
    except FaultError as e:
        raise LabError(str(e)) from None


def run(lab: Any, node: str, body: dict[str, Any], wait: float, json_out: bool,
        kv_op: dict[str, Any] | None = None) -> None:  # fmt: skip
    import zmq

    from nodes.external import names
    from nodes.external.client import call

    t0 = time.monotonic()
    name, reply = call(zmq.Context.instance(), lab.state["router"], node, body, wait,
                       secret=lab.secret)
    t1 = time.monotonic()
    if reply is None:
        out: dict[str, Any] = {"status": "timeout", "node": node}
        kind = "info"
    elif reply.get("type") == "error":
        code = reply.get("code")
        out = {"status": "error", "node": node, "code": code,
               "error": names.ERRORS.get(code, "custom") if isinstance(code, int) else "?",
               "definite": names.is_definite(code), "text": reply.get("text")}  # fmt: skip
        kind = "fail" if names.is_definite(code) else "info"
    else:
        out = {"status": "ok", "node": node, "reply": reply}
        kind = "ok"
    if kv_op is not None:
        _record(lab, name, node, kv_op, kind, reply, t0, t1)
    if json_out:
        print_json(out)
    else:
        detail = json.dumps(out.get("reply")) if "reply" in out else " ".join(
            f"{k}={v}" for k, v in out.items() if k not in ("status", "node"))  # fmt: skip
        typer.echo(f"{out['status']} from {node} {detail} ({(t1 - t0) * 1000:.1f} ms)")
    if out["status"] != "ok":
        raise typer.Exit(1)


def _record(lab: Any, name: str, node: str, op: dict[str, Any], kind: str,
            reply: dict[str, Any] | None, t0: float, t1: float) -> None:  # fmt: skip
    rid = f"{name}:1"
    invoke = {"type": "invoke", "t": t0, "process": name, "node": node, "request_id": rid,
              "workload": "lin-kv", "op": op["op"], "key": op["key"], "value": op.get("value"),
              "expected": op.get("expected")}  # fmt: skip
    done: dict[str, Any] = {"type": kind, "t": t1, "process": name, "node": node,
                            "request_id": rid, "workload": "lin-kv", "op": op["op"]}  # fmt: skip
    if op["op"] == "get" and reply is not None:
        if reply.get("type") == "read_ok":
            done["value"] = None if reply.get("value") is None else str(reply.get("value"))
        elif reply.get("code") == 20:  # never written: the register's initial None
            done.update(type="ok", value=None)
    for rec in (invoke, done):
        try:
            lab.call("history", record=rec, timeout=2.0)
        except LabError as e:
            say(f"warning: could not record history: {e}")
            return
