"""`labctl fault ...`: every fault of the vocabulary (faults/model.py), from a shell.

Each command builds the same mapping a scenario step would, validates it locally (so a
malformed duration is reported even with no lab running), and sends it to the supervisor.
Nodes may be named (r0) or given by role (leader, followers, all).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from labctl.cli.common import Json, LabDir, print_json, say
from labctl.errors import LabError

app = typer.Typer(
    help="Inject faults: partitions, delay, loss, pauses, kills, clocks, disks, lying.",
    short_help="Inject faults (partition, delay, pause, kill, clock, disk...).",
    no_args_is_help=True,
)

NODES = "NODES"  # metavar: names or roles, comma-separated
From = Annotated[
    str,
    typer.Option("--from", metavar=NODES, help="Sending side: names or roles, comma-separated."),
]
To = Annotated[
    str,
    typer.Option("--to", metavar=NODES, help="Receiving side: names or roles, comma-separated."),
]
Node = Annotated[
    str, typer.Argument(metavar="NODE", help="A node name (r0) or a role (leader, followers, all).")
]


def _apply(spec: dict[str, Any], lab_dir: str | None, json_out: bool = False) -> None:
    from labctl.api import Lab
    from labctl.errors import NoLab

    clean = {k: v for k, v in spec.items() if v is not None}
    try:
        lab = Lab.find(lab_dir)
    except NoLab:
        _validate(clean)  # a malformed fault is the better message, even without a lab
        raise
    # The supervisor validates with the same code (faults.model) and answers the same
    # one-line error, so a running lab spares this process the import.
    answer = lab.fault(clean)
    answer.pop("ok", None)
    if json_out:
        print_json(answer)
        return
    applied = answer.get("applied") or [answer.get("describe", "")]
    for line in applied:
        say(f"fault: {line}")
    if answer.get("outcome"):
        say(f"  {answer['outcome']}")


def _validate(spec: dict[str, Any]) -> None:
    from faults.model import FaultError, parse_fault

    try:
        parse_fault(spec)
    except FaultError as e:
        raise LabError(str(e)) from None


@app.command()
def partition(
    src: Annotated[
        str | None, typer.Option("--from", metavar=NODES, help="Sending side (names or roles).")
    ] = None,
    dst: Annotated[
        str | None, typer.Option("--to", metavar=NODES, help="Receiving side (names or roles).")
    ] = None,
    oneway: Annotated[bool, typer.Option("--oneway", help="Only from -> to.")] = False,
    shape: Annotated[
        str | None,
        typer.Option(
            "--shape",
            metavar="SHAPE",
            help="isolate, halves, majorities-ring or bridge (instead of --from/--to).",
        ),
    ] = None,
    node: Annotated[
        str | None,
        typer.Option("--node", metavar="NODE", help="The node --shape isolate cuts off."),
    ] = None,
    lab_dir: LabDir = None,
) -> None:
    """Drop messages between two sets of nodes, or by shape.

    Both ways unless --oneway; --shape cuts a named pattern instead of --from/--to."""
    spec = {"fault": "partition", "from": src, "to": dst, "shape": shape, "node": node}
    if oneway:
        spec["oneway"] = True
    _apply(spec, lab_dir)


@app.command()
def isolate(node: Node, lab_dir: LabDir = None) -> None:
    """Cut a node off from the other replicas (clients still reach it)."""
    _apply({"fault": "isolate", "node": node}, lab_dir)


@app.command()
def heal(
    src: Annotated[
        str | None, typer.Option("--from", metavar=NODES, help="Only faults from these.")
    ] = None,
    dst: Annotated[
        str | None, typer.Option("--to", metavar=NODES, help="Only faults to these.")
    ] = None,
    lab_dir: LabDir = None,
) -> None:
    """Remove link faults (all, or those touching --from/--to)."""
    _apply({"fault": "heal", "from": src, "to": dst}, lab_dir)


@app.command()
def delay(
    src: From,
    dst: To,
    ms: Annotated[
        str, typer.Option("--ms", metavar="MS", help="Added one-way latency (ms, or with a unit).")
    ],
    jitter: Annotated[
        str | None, typer.Option("--jitter", metavar="MS", help="+- jitter (ms).")
    ] = None,
    lab_dir: LabDir = None,
) -> None:
    """Hold messages from -> to back (per-link order is kept)."""
    _apply({"fault": "delay", "from": src, "to": dst, "ms": ms, "jitter": jitter}, lab_dir)


@app.command()
def loss(
    src: From,
    dst: To,
    p: Annotated[str, typer.Option("--p", metavar="P", help="Drop probability, 0..1.")],
    lab_dir: LabDir = None,
) -> None:
    """Drop messages from -> to at random."""
    _apply({"fault": "loss", "from": src, "to": dst, "p": p}, lab_dir)


@app.command()
def duplicate(
    src: From,
    dst: To,
    p: Annotated[str, typer.Option("--p", metavar="P", help="Duplicate probability, 0..1.")],
    lab_dir: LabDir = None,
) -> None:
    """Deliver messages from -> to twice at random."""
    _apply({"fault": "duplicate", "from": src, "to": dst, "p": p}, lab_dir)


@app.command()
def pause(
    node: Node,
    for_: Annotated[
        str | None, typer.Option("--for", metavar="DURATION", help="Resume after (2s, 500ms).")
    ] = None,
    lab_dir: LabDir = None,
) -> None:
    """Freeze a node with SIGSTOP, like a GC pause.

    Resumed after --for, or by `labctl fault resume NODE`."""
    _apply({"fault": "pause", "node": node, "for": for_}, lab_dir)


@app.command()
def resume(node: Node, lab_dir: LabDir = None) -> None:
    """SIGCONT a paused node."""
    _apply({"fault": "resume", "node": node}, lab_dir)


@app.command()
def kill(
    node: Node,
    power_loss: Annotated[
        bool,
        typer.Option(
            "--power-loss",
            help="The machine loses power: the WAL is cut back to the node's last fsync.",
        ),
    ] = False,
    lab_dir: LabDir = None,
) -> None:
    """SIGKILL a node (its WAL stays; `restart` recovers from it). With --power-loss, what
    it wrote without an fsync is lost too, as a power cut loses the page cache."""
    spec: dict = {"fault": "kill", "node": node}
    if power_loss:
        spec["power_loss"] = True
    _apply(spec, lab_dir)


@app.command()
def restart(node: Node, lab_dir: LabDir = None) -> None:
    """Start a node again from its WAL (killing it first if it runs)."""
    _apply({"fault": "restart", "node": node}, lab_dir)


@app.command()
def clock(
    node: Node,
    offset: Annotated[
        str | None, typer.Option("--offset", metavar="DURATION", help="Jump (7ms, -1s).")
    ] = None,
    drift: Annotated[
        str | None, typer.Option("--drift", metavar="RATE", help="Rate error (0.05 = 5% fast).")
    ] = None,
    lab_dir: LabDir = None,
) -> None:
    """Skew a node's clock: jump it (--offset), make it run fast (--drift)."""
    _apply({"fault": "clock", "node": node, "offset": offset, "drift": drift}, lab_dir)


@app.command()
def disk(
    node: Node,
    fsync: Annotated[
        str | None, typer.Option("--fsync", metavar="DURATION", help="Added fsync latency (12ms).")
    ] = None,
    stall: Annotated[
        str | None, typer.Option("--stall", metavar="DURATION", help="Block fsyncs for (9s).")
    ] = None,
    corrupt: Annotated[
        str | None,
        typer.Option("--corrupt", metavar="HOW",
                     help="Damage the WAL and restart the node on it: flip "
                     "(a bit in a written record) or lose (its newest fsynced records)."),
    ] = None,
    lab_dir: LabDir = None,
) -> None:
    """Slow a node's WAL fsyncs down, stall them, or corrupt what they wrote."""
    _apply({"fault": "disk", "node": node, "fsync": fsync, "stall": stall, "corrupt": corrupt},
           lab_dir)  # fmt: skip


@app.command()
def byzantine(
    node: Node,
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            metavar="MODE",
            help="The protocol's misbehaviour (pbft: silent, equivocate, forge, delay-primary),"
            " or honest.",
        ),
    ],
    lab_dir: LabDir = None,
) -> None:
    """Make a node lie the way its protocol defines (PBFT), or honest."""
    _apply({"fault": "byzantine", "node": node, "mode": mode}, lab_dir)


@app.command("list")
def list_faults(json_out: Json = False, lab_dir: LabDir = None) -> None:
    """Faults in force, with what heals each."""
    from labctl.api import Lab

    faults = Lab.find(lab_dir).call("faults")["faults"]
    if json_out:
        print_json(faults)
        return
    if not faults:
        say("no faults in force")
    for f in faults:
        typer.echo(f"{f['describe']:<40} healed by: {f['heals_with']}")
