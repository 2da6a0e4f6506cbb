"""`labctl client ...`: one operation against the lab, through the fault router.

The CLI joins the data plane as a client endpoint, so link faults that name clients apply.
It asks one node (--via; default: the node the lab sees as leader) and reports exactly what
came back: ok, not_leader (with the leader that node believes in), fail, or timeout. Exit 0
on ok, 1 otherwise. Each operation is also written to the run's history.jsonl.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from labctl.cli.common import Json, LabDir, print_json
from labctl.errors import LabError

app = typer.Typer(
    help="Send one client operation (put, get, cas, order) to a node.",
    no_args_is_help=True,
)

Via = Annotated[
    str | None,
    typer.Option("--via", metavar="NODE", help="Node to ask (name or role; default the leader)."),
]
Timeout = Annotated[
    str, typer.Option("--timeout", metavar="DURATION", help="Give up after this long.")
]
ReadMode = Annotated[
    str, typer.Option("--read", metavar="MODE", help="Read mode: log, quorum or lease.")
]


def _run(op: dict[str, Any] | Callable[..., dict[str, Any]], via: str | None, timeout: str,
         read_mode: str, lab_dir: str | None, json_out: bool) -> None:  # fmt: skip
    """One operation: `op` a kv operation's fields, or what sends it (`Lab.order`)."""
    from labctl.api import Lab
    from protocols.base import DurationError, parse_duration

    try:
        wait = parse_duration(timeout)
    except DurationError as e:
        raise LabError(f"--timeout: {e}") from None
    lab = Lab.find(lab_dir)
    try:
        if lab.status().get("protocol") == "external":  # a Maelstrom program: lin-kv's RPCs
            from labctl.cli import client_external

            if callable(op):
                raise LabError("external nodes take put, get, cas and send, not order")
            body = client_external.lin_kv_body(op)
            node = client_external.pick(lab, via)
            client_external.run(lab, node, body, wait, json_out, kv_op=op)
            return
        if callable(op):
            out = op(lab, via=via, timeout=wait)
        else:
            out = lab.request(op, via=via, timeout=wait, read=read_mode)
    finally:
        lab.close()
    ms = out.pop("ms")
    if json_out:
        print_json(out)
    else:
        detail = " ".join(f"{k}={v}" for k, v in out.items() if k not in ("status", "node"))
        typer.echo(f"{out['status']} from {out['node']} {detail} ({ms:.1f} ms)")
    if out["status"] != "ok":
        raise typer.Exit(1)


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
def send(
    node: Annotated[str, typer.Argument(metavar="NODE", help="The replica (r0, ...) or a role.")],
    body: Annotated[
        str,
        typer.Argument(metavar="BODY", help='A Maelstrom body: \'{"type": "echo", "echo": 1}\''),
    ],
    timeout: Timeout = "1s",
    json_out: Json = False,
    lab_dir: LabDir = None,
) -> None:
    """External nodes: send one Maelstrom request body and print the reply."""
    import json

    from labctl.api import Lab
    from labctl.cli import client_external
    from protocols.base import DurationError, parse_duration

    try:
        wait = parse_duration(timeout)
        doc = json.loads(body)
        if not isinstance(doc, dict) or not isinstance(doc.get("type"), str):
            raise ValueError("a JSON object with a \"type\"")
    except (DurationError, ValueError) as e:
        raise LabError(f"send: {e}") from None
    lab = Lab.find(lab_dir)
    try:
        if lab.status().get("protocol") != "external":
            raise LabError("send is for external nodes (labctl up --node-cmd ...)")
        client_external.run(lab, client_external.pick(lab, node), doc, wait, json_out)
    finally:
        lab.close()


@app.command()
def order(
    user: Annotated[str, typer.Option("--user", metavar="NAME", help="Who orders.")] = "riya",
    side: Annotated[str, typer.Option("--side", metavar="SIDE", help="buy or sell.")] = "buy",
    qty: Annotated[int, typer.Option("--qty", metavar="N", help="Quantity.")] = 200,
    symbol: Annotated[
        str, typer.Option("--symbol", metavar="SYMBOL", help="What to trade.")
    ] = "ALPHA",
    via: Via = None,
    timeout: Timeout = "1s",
    json_out: Json = False,
    lab_dir: LabDir = None,
) -> None:
    """Place a trade order (the leader sends it on to the broker).

    The leader forwards it to the broker with its fencing token (its term)."""
    if side not in ("buy", "sell"):
        raise LabError(f"--side must be buy or sell, got {side!r}")
    if qty <= 0:
        raise LabError(f"--qty must be positive, got {qty}")
    _run(lambda lab, **kw: lab.order(user, side, qty, symbol, **kw), via, timeout, "log",
         lab_dir, json_out)  # fmt: skip
