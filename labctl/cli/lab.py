"""`labctl up`, `down`, `status`, `protocols`: the lab's lifecycle."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from typing import Annotated, Any

import typer

from labctl.cli.common import (
    Json,
    LabDir,
    UnusedLabDir,
    print_json,
    protocol_names,
    say,
    unknown_lines,
)
from labctl.cli.mutants import Mutate
from labctl.errors import LabError
from protocols import DEFAULT

DEFAULT_PROTOCOL = DEFAULT


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
    """Validate everything a lab needs before any process starts (see labctl.api)."""
    from labctl.api import lab_config as config

    return config(protocol, nodes, seed, options, fencing, mutate)


def external_config(
    command: str, nodes: int | None, seed: int, topology: str = "grid"
) -> dict[str, Any]:
    """A lab of external replicas (labctl/external.py), validated before anything starts."""
    from labctl.api import MAX_NODES
    from labctl.external import EXTERNAL, NodeConfigError, node_config

    n = 3 if nodes is None else nodes
    if not 1 <= n <= MAX_NODES:
        raise LabError(f"--nodes must be between 1 and {MAX_NODES}, got {n}")
    try:
        node = node_config({"command": command, "topology": topology})
    except NodeConfigError as e:
        raise LabError(str(e)) from None
    return {"protocol": EXTERNAL, "nodes": n, "seed": seed, "options": {}, "fencing": False,
            "node": node}  # fmt: skip


def system_config(system: str, binary: str | None, nodes: int | None, seed: int,
                  pre_vote: bool = False) -> dict[str, Any]:  # fmt: skip
    """A lab of a real system's members (labctl/etcd/), validated before anything starts."""
    from labctl.api import MAX_NODES
    from labctl.etcd import SystemConfigError
    from labctl.etcd import system_config as config

    n = 3 if nodes is None else nodes
    if not 1 <= n <= MAX_NODES:
        raise LabError(f"--nodes must be between 1 and {MAX_NODES}, got {n}")
    try:
        sysconf = config(system, binary, pre_vote=pre_vote)
    except SystemConfigError as e:
        raise LabError(str(e)) from None
    return {"protocol": system, "nodes": n, "seed": seed, "options": {}, "fencing": False,
            "system": sysconf}  # fmt: skip


def up(
    nodes: Annotated[
        int | None,
        typer.Option(
            "-n",
            "--nodes",
            metavar="N",
            help="Replicas (default: the protocol's, 3; pbft 4).",
            show_default=False,
        ),
    ] = None,
    protocol: Annotated[
        str,
        typer.Option("-p", "--protocol", metavar="NAME", help=f"One of: {protocol_names()}."),
    ] = DEFAULT_PROTOCOL,
    seed: Annotated[
        int, typer.Option("--seed", metavar="N", help="Seed for every random choice.")
    ] = 42,
    opt: Annotated[
        list[str] | None,
        typer.Option(
            "--opt",
            metavar="KEY=VALUE",
            help="Protocol option (repeatable; `labctl protocols` lists them).",
        ),
    ] = None,
    fencing: Annotated[
        bool, typer.Option("--fencing/--no-fencing", help="Broker rejects stale tokens.")
    ] = False,
    mutate: Mutate = None,
    detach: Annotated[bool, typer.Option("-d", "--detach", help="Start and return.")] = False,
    table: Annotated[
        bool, typer.Option("--table", help="A live status table instead of the dashboard.")
    ] = False,
    node_cmd: Annotated[
        str | None,
        typer.Option(
            "--node-cmd",
            metavar="COMMAND",
            help="Replicas are this program (Maelstrom's protocol).",
        ),
    ] = None,
    topology: Annotated[
        str,
        typer.Option("--topology", metavar="NAME", help="With --node-cmd: broadcast topology."),
    ] = "grid",
    system: Annotated[
        str | None,
        typer.Option("--system", metavar="NAME",
                     help="Replicas are a real system's members: etcd (needs root)."),
    ] = None,
    system_bin: Annotated[
        str | None,
        typer.Option("--system-bin", metavar="PATH", help="With --system: its binary."),
    ] = None,
    etcd_pre_vote: Annotated[
        bool,
        typer.Option("--etcd-pre-vote",
                     help="With --system etcd: etcd's --pre-vote (off in 3.4), so a healed "
                          "minority does not depose the leader."),
    ] = False,
    lab_dir: LabDir = None,
) -> None:
    """Start a lab and open the dashboard (-d: start and return).

    The router, the broker and the replicas are real processes. Quitting the dashboard
    asks whether to stop the lab. Without a terminal (or with --table) the status is
    printed as the lab changes, until Ctrl-C stops the lab."""
    from labctl import api

    if etcd_pre_vote and system != "etcd":
        raise LabError("--etcd-pre-vote is for --system etcd")
    if system is not None:
        if node_cmd is not None or mutate:
            raise LabError("--system runs a real system's members: not with --node-cmd or "
                           "--mutate")  # fmt: skip
        config = system_config(system, system_bin, nodes, seed, etcd_pre_vote)
        protocol = config["protocol"]
    elif node_cmd is not None:
        if mutate:
            raise LabError("--mutate is for the lab's own protocols: external nodes run your "
                           "program, which the lab cannot mutate")  # fmt: skip
        config = external_config(node_cmd, nodes, seed, topology)
        protocol = config["protocol"]
    else:
        config = lab_config(protocol, nodes, seed, parse_opts(opt or []), fencing, mutate)
    for warning in api.config_warnings(config):
        say(f"warning: {warning}")
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
    # Return once there is a leader to name in a fault (`--from leader`), as a user
    # following the README does straight after `up -d`.
    try:
        leaders = lab.settle().get("leaders") or []
    except KeyboardInterrupt:
        if owner is None:
            raise
        _down_now(lab)  # a signal while we waited for a leader stops the lab the same way
        raise typer.Exit(130) from None
    elapsed = time.monotonic() - t0
    who = f", {' and '.join(leaders)} lead{'s' if len(leaders) == 1 else ''}" if leaders else ""
    mutant = f" with mutation {config['mutate']}" if config.get("mutate") else ""
    say(
        f"lab up: {config['nodes']} x {protocol}{mutant} in {elapsed:.2f}s{who} "
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
    stop = _flag_on_signals()
    try:
        _live_status(lab, stop)
    finally:
        _down_now(lab)


def _down_now(lab: Any) -> None:
    """Stop a foreground lab: `down`, with further signals ignored so they cannot cut it
    short."""
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    answer = lab.down()
    say(f"lab down; run record in {answer.get('run_dir')}")


def _stop_on_signals() -> None:
    """SIGTERM and SIGHUP stop a foreground lab as Ctrl-C does: `down`, the whole record.
    (Were the CLI killed outright, the supervisor would get SIGTERM from the kernel.)"""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)


def _flag_on_signals() -> list[int]:
    """Ctrl-C, SIGTERM and SIGHUP while the table runs: noted, and acted on between two
    refreshes. Raised as KeyboardInterrupt (as during start-up), a signal lands wherever
    the table's status call happens to be, inside pyzmq or msgspec too; once, at load 25,
    a foreground lab given Ctrl-C there never stopped (not reproduced; the suspicion is a
    lock left held). Returns the list the signals are appended to."""
    caught: list[int] = []

    def note(signum: int, frame: Any) -> None:
        caught.append(signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, note)
    return caught


def _live_status(lab: Any, stop: list[int]) -> None:
    """In a terminal, redraw the table in place; otherwise (a pipe, a log file) print it
    again whenever what it shows changes, each time with the wall-clock time, flushed;
    until a signal lands in `stop`."""
    from labctl.statustext import render

    redraw = sys.stdout.isatty()
    last = ""
    while not stop:
        try:
            doc = lab.status()
        except LabError as e:
            say(f"error: {e}")
            return
        text = render(doc, color=redraw, uptime=redraw)
        if redraw:
            sys.stdout.write("\x1b[H\x1b[2J" + text + "\n")
        elif text != last:
            sys.stdout.write(time.strftime("%H:%M:%S ") + text.replace("\n", "\n  ") + "\n")
        sys.stdout.flush()
        last = text
        # A display refresh, not a wait on an event; a signal cuts it short only by the
        # rest of these 0.25 s (PEP 475 resumes the sleep after the handler).
        time.sleep(0.25)


def down(lab_dir: LabDir = None) -> None:
    """Stop the running lab and finish its run record."""
    from labctl.api import Lab

    lab = Lab.find(lab_dir)
    t0 = time.monotonic()
    answer = lab.down()
    say(f"lab down in {time.monotonic() - t0:.2f}s; run record in {answer.get('run_dir')}")
    for line in unknown_lines(answer.get("run_dir")):
        say(line)


def status(
    json_out: Json = False,
    leader: Annotated[
        bool,
        typer.Option("--leader", help="Print only the leader's name (exit 1 if none leads)."),
    ] = False,
    lab_dir: LabDir = None,
) -> None:
    """Every node, the faults in force, the violations found.

    Per node: pid, state, role, term, leader, commit index (the protocol's own columns)."""
    from labctl.api import Lab

    doc = Lab.find(lab_dir).status()
    if leader:  # for scripts: OLD=$(labctl status --leader)
        if not doc.get("leaders"):
            say("no node leads right now")
            raise typer.Exit(1)
        typer.echo(" ".join(doc["leaders"]))
        return
    if json_out:
        print_json(doc)
        return
    from labctl.statustext import render

    sys.stdout.write(render(doc, color=sys.stdout.isatty()) + "\n")


def list_protocols(json_out: Json = False, lab_dir: UnusedLabDir = None) -> None:
    """The protocols this lab can run, with their options."""
    from labctl.catalogue import catalogue

    rows = catalogue()
    if json_out:
        print_json(rows)
        return
    for r in rows:
        opts = " ".join(f"{k}={v}" for k, v in r["options"].items())
        typer.echo(f"{r['name']:<8} {r['description']}\n         nodes: {r['default_nodes']}; "
                   f"options: {opts}")  # fmt: skip
