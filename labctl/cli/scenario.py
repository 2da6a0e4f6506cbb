"""`labctl scenario run|list|show` and `labctl check RUN_DIR`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from labctl.cli.common import (
    Json,
    LabDir,
    UnusedLabDir,
    lin_unknown_lines,
    print_json,
    protocol_class,
    protocol_names,
)
from labctl.cli.mutants import Mutate
from labctl.errors import LabError
from protocols import DEFAULT

app = typer.Typer(
    help="Replay incidents from scenario files, with a verdict.", no_args_is_help=True
)
Report = Annotated[
    bool,
    typer.Option("--report/--no-report", help="Write RUN/report.html and print its path."),
]


def _load(name: str, protocol: str | None = None) -> Any:
    from labctl.scenario.format import ScenarioError
    from labctl.scenario.library import resolve

    try:
        return resolve(name, protocol)
    except ScenarioError as e:
        raise LabError(str(e)) from None


@app.command("run")
def run(
    name: Annotated[
        str, typer.Argument(metavar="SCENARIO", help="A built-in scenario name or a TOML file.")
    ],
    protocol: Annotated[
        str | None,
        typer.Option(
            "--protocol",
            "-p",
            metavar="NAME",
            help=f"Run it on another protocol ({protocol_names()}).",
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", metavar="N", help="Override the file's seed.")
    ] = None,
    dash: Annotated[bool, typer.Option("--dash", help="Watch it live in the dashboard.")] = False,
    node_cmd: Annotated[
        str | None,
        typer.Option(
            "--node-cmd", metavar="COMMAND", help="Replicas are this program (Maelstrom)."
        ),
    ] = None,
    workload: Annotated[
        str | None,
        typer.Option(
            "--workload", "-w", metavar="KIND", help="With --node-cmd: lin-kv, broadcast, ..."
        ),
    ] = None,
    topology: Annotated[
        str | None,
        typer.Option("--topology", metavar="NAME", help="With --node-cmd: broadcast topology."),
    ] = None,
    system: Annotated[
        str | None,
        typer.Option("--system", metavar="NAME", help="Run it on a real system: etcd (root)."),
    ] = None,
    report: Report = True,
    mutate: Mutate = None,
    json_out: Json = False,
    lab_dir: LabDir = None,
) -> None:
    """Run a scenario in an isolated lab and give its verdict (and RUN/report.html).

    Exit 0 when its expectations are met, 1 if not, 2 for a broken scenario, 3 when the
    lab itself failed."""
    from labctl.scenario import runner

    sc = _load(name, protocol)
    if node_cmd is not None or workload is not None or topology is not None:
        sc = _external(sc, node_cmd, workload, topology)
    if system is not None:
        sc = _system(sc, system)
    _prepare(sc, seed, mutate)
    if dash:
        raise typer.Exit(_run_with_dashboard(sc, lab_dir, json_out, report))
    raise typer.Exit(runner.run(sc, lab_dir, json_out, report))


def _run_with_dashboard(sc: Any, lab_dir: str | None, json_out: bool, report: bool) -> int:
    """Play the scenario in a thread while the dashboard shows its lab in this terminal.

    Quitting the dashboard early lets the scenario finish (its progress then shows on
    stderr); the summary and exit code are the same as without --dash."""
    from labctl.scenario import runner
    from tui.app import run_dashboard  # the CLI is the one place that knows both

    voice = runner.Voice(muted=True)  # the dashboard owns the terminal
    play = runner.InBackground(sc, lab_dir, voice)
    iso = play.wait_for_lab()
    if iso is not None:
        run_dashboard(iso, stop_on_quit_prompt=False)
    voice.muted = False
    code, summary = play.join()
    runner.finish(summary, json_out, report)
    return code


def _prepare(sc: Any, seed: int | None, mutate: str | None) -> None:
    """What `scenario run` and `sim run` both do to a loaded scenario before it runs: refuse
    a protocol that cannot run, apply --seed and --mutate."""
    if sc.node is None and sc.system is None:
        # Unknown, or a module:Class that does not import: one line, exit 2.
        protocol_class(sc.protocol)
    if seed is not None:
        if seed < 0:
            raise LabError(f"--seed must not be negative, got {seed}")
        sc.seed = seed
    if mutate:
        _mutate(sc, mutate)


def _mutate(sc: Any, name: str) -> None:
    from labctl.scenario.format import ScenarioError, set_mutation

    try:
        set_mutation(sc, name)
    except ScenarioError as e:
        raise LabError(f"--mutate: {e}") from None


def _external(sc: Any, node_cmd: str | None, workload: str | None, topology: str | None) -> Any:
    from labctl.scenario.format import ScenarioError, make_external

    node = dict(sc.node or {})
    node.pop("argv", None)
    if node_cmd is not None:
        node["command"] = node_cmd
    if topology is not None:
        node["topology"] = topology
    if not node.get("command"):
        raise LabError("--workload and --topology go with external nodes: give --node-cmd")
    try:
        make_external(sc, node, workload)
    except ScenarioError as e:
        raise LabError(str(e)) from None
    return sc


def _system(sc: Any, name: str) -> Any:
    from labctl.etcd import SystemConfigError, system_config
    from labctl.scenario.format import ScenarioError, make_system

    try:
        system_config(name)  # this machine can (root, namespaces), or one line why not
        # The file's own [system] keys (pre_vote) stay; --system names the system.
        keep = {k: v for k, v in (sc.system or {}).items() if k == "pre_vote"}
        make_system(sc, {"name": name, **keep})
    except (SystemConfigError, ScenarioError) as e:
        raise LabError(str(e)) from None
    return sc


@app.command("list")
def list_scenarios(json_out: Json = False, lab_dir: UnusedLabDir = None) -> None:
    """The built-in scenarios."""
    from labctl.scenario.library import names

    rows = []
    for n in names():
        sc = _load(n)
        rows.append({"name": n, "protocol": sc.protocol, "nodes": sc.nodes,
                     "duration": sc.duration, "description": sc.description})  # fmt: skip
    if json_out:
        print_json(rows)
        return
    for r in rows:
        typer.echo(f"{r['name']:<24} {r['nodes']} x {r['protocol']:<6} {r['duration']:>5g}s  "
                   f"{r['description']}")  # fmt: skip


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(metavar="NAME", help="A built-in scenario's name.")],
    lab_dir: UnusedLabDir = None,
) -> None:
    """Print a built-in scenario's file (the format: docs/scenarios.md)."""
    from labctl.scenario.library import find

    _load(name)
    typer.echo(find(name).read_text().rstrip())


def check(
    run: Annotated[
        str,
        typer.Argument(
            metavar="RUN", help="A run directory, a run's name under <lab-dir>/runs/, or latest."
        ),
    ],
    json_out: Json = False,
    lab_dir: LabDir = None,
    lin_seconds: Annotated[
        float | None,
        typer.Option(
            "--lin-seconds", metavar="S", help="Linearizability search time per key, s [20]."
        ),
    ] = None,
    lin_memory: Annotated[
        float | None,
        typer.Option(
            "--lin-memory", metavar="MB", help="Linearizability search memory per key, MB [1024]."
        ),
    ] = None,
) -> None:
    """Recompute a run's verdict from its files (exit 1: violations).

    A run that came from a scenario (scenario run, chaos, sim run) is judged against that
    scenario's expectations, with the verdict and exit code it had live (0 met, 1 not
    met, 3 the lab failed); any other run is judged safe or not (exit 1 with violations).
    Violations are summed up per kind, with the first of each (wall-clock time). A key
    whose linearizability search runs out of its budget is reported as unknown (neither
    safe nor a violation), with the budget that ran out."""
    from labctl.checkers import CheckerConfig, RunDirError, check_run_dir
    from labctl.runs import Clock, find_run
    from labctl.scenario.runner import rejudge

    budget: dict[str, Any] = {}
    if lin_seconds is not None:
        budget["lin_seconds"] = lin_seconds
    if lin_memory is not None:
        budget["lin_memory_mb"] = lin_memory
    try:
        CheckerConfig(**budget)
    except ValueError as e:
        raise LabError(str(e)) from None
    path = find_run(run, lab_dir)
    try:
        result = check_run_dir(path, overrides=budget)
    except RunDirError as e:
        raise LabError(str(e)) from None
    except OSError as e:
        raise LabError(f"{run}: cannot read it: {e}") from None
    by_kind: dict[str, dict[str, Any]] = {}
    for v in result["violations"]:
        entry = by_kind.setdefault(v["kind"], {"count": 0, "first": v})
        entry["count"] += 1
    result["by_kind"] = by_kind
    judged = rejudge(path, result["violations"])
    if judged is not None:
        result["scenario"] = judged
    if json_out:
        print_json(result)
    else:
        try:
            when = Clock(path).iso  # wall-clock time, to line up with the user's own logs
        except LabError:
            when = lambda t: f"t={t:.3f}"  # noqa: E731 - a run from before the clock anchor
        for kind, entry in by_kind.items():
            v = entry["first"]
            typer.echo(f"{kind:<16} x{entry['count']:<5} first {when(v['t'])} "
                       f"{','.join(v['nodes'])}: {v['detail']}")  # fmt: skip
        for line in lin_unknown_lines(result):  # check_run_dir's is a checkers summary
            typer.echo(line)
        typer.echo(
            f"{path.name}: {'safe' if result['safe'] else 'UNSAFE'}: "
            f"{len(result['violations'])} violations"
        )
        if judged is not None:
            typer.echo(f"scenario {judged['scenario']} ({judged['protocol']}):")
            for e in judged["expectations"]:
                typer.echo(f"  {'met    ' if e['met'] else 'NOT MET'}  {e['expect']}")
            typer.echo(f"verdict: {judged['verdict']}")
    if judged is not None:
        raise typer.Exit(judged["exit"])
    if not result["safe"]:
        raise typer.Exit(1)


def chaos(
    protocol: Annotated[
        str, typer.Option("--protocol", "-p", metavar="NAME", help=f"One of: {protocol_names()}.")
    ] = DEFAULT,
    runs: Annotated[int, typer.Option("--runs", metavar="N", help="How many runs.")] = 20,
    duration: Annotated[
        str, typer.Option("--duration", metavar="DURATION", help="Length of each run.")
    ] = "30s",
    nodes: Annotated[
        str | None,
        typer.Option(
            "--nodes", metavar="N,N", help="Cluster sizes to cycle, e.g. 3,5 (pbft: 4,7)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="Seed of the first run.")] = 1,
    report: Annotated[
        bool,
        typer.Option("--report/--no-report", help="A report for each run that broke something."),
    ] = True,
    mutate: Mutate = None,
    json_out: Json = False,
    lab_dir: LabDir = None,
) -> None:
    """Randomized chaos runs, every fault kind (exit 1: a violation).

    Each run heals everything before its end; exit 3 when a lab itself failed."""
    from labctl.chaos import run_many
    from protocols.base import DurationError, parse_duration

    cls = protocol_class(protocol)
    try:
        seconds = parse_duration(duration)
        if nodes is None:  # sizes where the protocol tolerates one or two faulty nodes
            nodes = ",".join(str(n) for n in cls.test_sizes)
        sizes = [int(x) for x in nodes.split(",")]
    except (DurationError, ValueError) as e:
        raise LabError(f"bad --duration or --nodes: {e}") from None
    if seconds < 6 or runs < 1 or not all(1 <= n <= 15 for n in sizes):
        raise LabError("--duration must be at least 6s, --runs at least 1, --nodes 1..15")
    if mutate:  # validated before the first run starts
        from labctl.chaos import random_scenario

        _mutate(random_scenario(protocol, sizes[0], seconds, seed), mutate)
    result = run_many(protocol, sizes, runs, seconds, seed, lab_dir, mutate or "", report=report)
    if json_out:
        print_json(result)
    if result["failed_runs"]:
        raise typer.Exit(3)
    if result["violating_runs"]:
        raise typer.Exit(1)
