"""`labctl up`, `down`, `status`, `protocols`: the lab's lifecycle."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from typing import Annotated, Any

import typer

from labctl.cli.common import Json, LabDir, print_json, say
from labctl.cli.mutants import Mutate
from labctl.errors import LabError

DEFAULT_PROTOCOL = "raft"
MAX_NODES = 15


def parse_opts(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise LabError(f"--opt wants KEY=VALUE, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def lab_config(
    protocol: str,
    nodes: int | None,
    seed: int,
    options: dict[str, Any],
    fencing: bool,
    mutate: str | None = None,
) -> dict[str, Any]:
    """Validate everything a lab needs before any process starts."""
    import protocols
    from protocols.base import ConfigError, decode_options

    try:
        cls = protocols.get(protocol)
    except protocols.UnknownProtocol as e:
        raise LabError(str(e)) from None
    n = cls.default_nodes if nodes is None else nodes
    if not 1 <= n <= MAX_NODES:
        raise LabError(f"--nodes must be between 1 and {MAX_NODES}, got {n}")
    from labctl.cli.mutants import configure

    config = configure(
        {"protocol": protocol, "nodes": n, "seed": seed, "options": options, "fencing": fencing},
        mutate,
    )
    try:
        decode_options(cls.Options, config["options"])
    except ConfigError as e:
        raise LabError(f"protocol {protocol!r}: {e}") from None
    return config


def register(app: typer.Typer) -> None:
    app.command("up")(up)
    app.command("down")(down)
    app.command("status")(status)
    app.command("protocols")(list_protocols)


def up(
    nodes: Annotated[int | None, typer.Option("-n", "--nodes", help="Replicas.")] = None,
    protocol: Annotated[str, typer.Option("-p", "--protocol", help="Protocol.")] = DEFAULT_PROTOCOL,
    seed: Annotated[int, typer.Option("--seed", help="Seed for every random choice.")] = 42,
    opt: Annotated[
        list[str] | None, typer.Option("--opt", help="Protocol option KEY=VALUE (repeatable).")
    ] = None,
    fencing: Annotated[
        bool, typer.Option("--fencing/--no-fencing", help="Broker rejects stale tokens.")
    ] = False,
    mutate: Mutate = None,
    detach: Annotated[bool, typer.Option("-d", "--detach", help="Start and return.")] = False,
    table: Annotated[
        bool, typer.Option("--table", help="A live status table instead of the dashboard.")
    ] = False,
    lab_dir: LabDir = None,
) -> None:
    """Start a lab (router, broker, replicas as real processes) and open the dashboard.

    Quitting the dashboard asks whether to stop the lab; -d starts it and returns."""
    from labctl import api

    config = lab_config(protocol, nodes, seed, parse_opts(opt or []), fencing, mutate)
    # The dashboard may leave the lab running on quit, so the lab must not die with us;
    # the plain table (no terminal to draw on, or --table) takes the lab down with it.
    dashboard = not detach and not table and sys.stdin.isatty() and sys.stdout.isatty()
    t0 = time.monotonic()
    owner = None if detach or dashboard else os.getpid()
    if owner is not None:
        _stop_on_signals()  # before the lab starts: a SIGTERM while it starts stops it too
    try:
        lab = api.up(lab_dir, config, foreground_pid=owner)
    except KeyboardInterrupt:
        if owner is None:
            raise
        # Interrupted while the lab started: stop it if it got as far as answering (else
        # it stops on its own, with its record, when this process is gone).
        with contextlib.suppress(LabError):
            answer = api.Lab.find(lab_dir).down()
            say(f"lab down; run record in {answer.get('run_dir')}")
        raise typer.Exit(130) from None
    elapsed = time.monotonic() - t0
    mutant = f" with mutation {config['mutate']}" if config.get("mutate") else ""
    say(
        f"lab up: {config['nodes']} x {protocol}{mutant} in {elapsed:.2f}s "
        f"(supervisor pid {lab.state['supervisor_pid']}, run {lab.state['run_dir']})"
    )
    if detach:
        return
    if dashboard:
        from tui.app import run_dashboard

        def hangup(signum: int, frame: Any) -> None:
            # The terminal went away (closed window, killed tmux): nobody can answer the
            # quit prompt any more, so the lab stops with us rather than run on unseen.
            from labctl.api import Lab

            try:  # whichever lab runs here now: a protocol swap may have replaced ours
                Lab.find(lab.lab_dir).down()
            except LabError:
                pass
            os._exit(129)

        signal.signal(signal.SIGHUP, hangup)
        run_dashboard(lab.lab_dir, stop_on_quit_prompt=True)
        return
    say("Ctrl-C stops the lab.")
    try:
        _live_status(lab)
    except KeyboardInterrupt:
        pass
    finally:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)  # a second signal must not cut `down` short
        answer = lab.down()
        say(f"lab down; run record in {answer.get('run_dir')}")


def _stop_on_signals() -> None:
    """SIGTERM and SIGHUP stop a foreground lab as Ctrl-C does: `down`, the whole record.
    (Were the CLI killed outright, the supervisor would get SIGTERM from the kernel.)"""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)


def _live_status(lab: Any) -> None:
    from rich.console import Console
    from rich.live import Live

    console = Console(stderr=True)
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        while True:
            try:
                doc = lab.status()
            except LabError as e:
                live.update(f"[red]{e}[/red]")
                return
            live.update(status_table(doc))
            time.sleep(0.25)  # a display refresh, not a wait on an event


def status_table(doc: dict[str, Any]) -> Any:
    from rich.table import Table

    leaders = doc.get("leaders") or []
    title = f"{doc['protocol']} · {len(doc['nodes'])} replicas · seed {doc['seed']}"
    if len(leaders) > 1:
        title += f" · [bold red]{len(leaders)} LEADERS: {', '.join(leaders)}[/bold red]"
    table = Table(title=title, title_justify="left", box=None, pad_edge=False)
    columns = STATUS_COLUMNS.get(doc["protocol"], STATUS_COLUMNS["raft"])
    for col in ("node", "pid", "state", *(header for header, _ in columns)):
        table.add_column(col)
    for n in doc["nodes"]:
        role = n.get("role") or "-"
        style = "bold red" if role in ("leader", "primary") and len(leaders) > 1 else ""
        state = n["state"] + (f" {n['paused_for']:.1f}s" if n.get("paused_for") else "")
        cells = [_cell(n, key) for _, key in columns]
        table.add_row(n["id"], str(n.get("pid") or "-"), state, *cells, style=style)
    faults = doc.get("faults") or []
    if faults:
        table.caption = "faults: " + "; ".join(f["describe"] for f in faults)
        table.caption_justify = "left"
    return table


# What each protocol's rows show (the dashboard's nodes panel tells the same stories).
STATUS_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "raft": [("role", "role"), ("term", "term"), ("leader", "leader"),
             ("commit", "commit_index"), ("log", "log")],
    "epaxos": [("committed", "committed"), ("executed", "executed"),
               ("fast", "fast_path_ratio"), ("recovering", "recovering"), ("ballot", "ballot")],
    "pbft": [("role", "role"), ("view", "view"), ("primary", "primary"), ("seq", "seq"),
             ("commit", "commit_index"), ("ckpt", "checkpoint"), ("byzantine", "byzantine")],
}  # fmt: skip


def _cell(node: dict[str, Any], key: str) -> str:
    v = node.get(key)
    if key == "fast_path_ratio" and isinstance(v, (int, float)):
        return f"{v * 100:.0f}%"
    if key == "byzantine":
        return v or "honest"
    if key == "seq" and node.get("role") != "primary":
        return "-"  # the next sequence number is the primary's to assign
    return _s(v)


def _s(v: Any) -> str:
    return "-" if v is None else str(v)


def down(lab_dir: LabDir = None) -> None:
    """Stop the running lab and finish its run record."""
    from labctl.api import Lab

    lab = Lab.find(lab_dir)
    t0 = time.monotonic()
    answer = lab.down()
    say(f"lab down in {time.monotonic() - t0:.2f}s; run record in {answer.get('run_dir')}")


def status(json_out: Json = False, lab_dir: LabDir = None) -> None:
    """Show every node: pid, state, role, term, leader, commit index; and faults in force."""
    from labctl.api import Lab

    doc = Lab.find(lab_dir).status()
    if json_out:
        print_json(doc)
        return
    from rich.console import Console

    Console().print(status_table(doc))


def list_protocols(json_out: Json = False) -> None:
    """The protocols this lab can run."""
    import msgspec

    import protocols

    rows = []
    for name in protocols.available():
        cls = protocols.get(name)
        rows.append(
            {
                "name": name,
                "description": cls.description,
                "default_nodes": cls.default_nodes,
                "options": msgspec.to_builtins(cls.Options()),
            }
        )
    if json_out:
        print_json(rows)
        return
    for r in rows:
        opts = " ".join(f"{k}={v}" for k, v in r["options"].items())
        typer.echo(f"{r['name']:<8} {r['description']}\n         options: {opts}")
