"""`labctl client ...`: one operation against the lab, through the fault router.

The CLI joins the data plane as a client endpoint, so link faults that name clients apply.
It asks one node (--via; default: the node the lab sees as leader) and reports exactly what
came back: ok, not_leader (with the leader that node believes in), fail, or timeout. Exit 0
on ok, 1 otherwise. Each operation is also written to the run's history.jsonl.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from labctl.cli.common import Json, LabDir, print_json
from labctl.errors import LabError

app = typer.Typer(
    help="Send one client operation (put, get, cas, order) to a node.", no_args_is_help=True
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


def _run(op: dict[str, Any], via: str | None, timeout: str, read_mode: str,
         lab_dir: str | None, json_out: bool) -> None:  # fmt: skip
    from labctl.api import Lab
    from protocols.base import DurationError, parse_duration

    try:
        wait = parse_duration(timeout)
    except DurationError as e:
        raise LabError(f"--timeout: {e}") from None
    lab = Lab.find(lab_dir)
    try:
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
    import uuid

    from protocols.base import Order

    if side not in ("buy", "sell"):
        raise LabError(f"--side must be buy or sell, got {side!r}")
    if qty <= 0:
        raise LabError(f"--qty must be positive, got {qty}")
    o = Order(order_id=f"o-{uuid.uuid4().hex[:10]}", user=user, side=side, qty=qty, symbol=symbol)
    _run({"op": "order", "key": symbol, "value": f"{user}:{side}:{qty}", "order": o}, via, timeout,
         "log", lab_dir, json_out)  # fmt: skip
