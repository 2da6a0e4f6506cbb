"""`labctl scenario run|list|show` and `labctl check RUN_DIR`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from labctl.cli.common import Json, LabDir, lin_unknown_lines, print_json
from labctl.errors import LabError

app = typer.Typer(help="Replay incidents from scenario files, with a verdict.")


def _load(name: str, protocol: str | None = None) -> Any:
    from labctl.scenario.format import ScenarioError
    from labctl.scenario.library import resolve

    try:
        return resolve(name, protocol)
    except ScenarioError as e:
        raise LabError(str(e)) from None


@app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="A built-in scenario name or a TOML file.")],
    protocol: Annotated[str | None, typer.Option("--protocol", "-p", help="Override.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Override the file's seed.")] = None,
    dash: Annotated[bool, typer.Option("--dash", help="Watch it live in the dashboard.")] = False,
    json_out: Json = False,
    lab_dir: LabDir = None,
) -> None:
    """Run a scenario in an isolated lab and give its verdict.

    Exit 0 when its expectations are met, 1 if not, 2 for a broken scenario, 3 when the
    lab itself failed."""
    from labctl.scenario import runner

    sc = _load(name, protocol)
    if not sc.runnable:
        import protocols

        raise LabError(f"{sc.path}: protocol {sc.protocol!r} is not built yet (available: "
                       f"{', '.join(protocols.available())}; try --protocol)")  # fmt: skip
    if seed is not None:
        if seed < 0:
            raise LabError(f"--seed must not be negative, got {seed}")
        sc.seed = seed
    if dash:
        raise typer.Exit(runner.run_with_dashboard(sc, lab_dir, json_out))
    raise typer.Exit(runner.run(sc, lab_dir, json_out))


@app.command("list")
def list_scenarios(json_out: Json = False) -> None:
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
def show(name: str) -> None:
    """Print a built-in scenario's file."""
    from labctl.scenario.library import find

    _load(name)
    typer.echo(find(name).read_text().rstrip())


def check(
    run_dir: Annotated[str, typer.Argument(help="A run directory (runs/<...>).")],
    json_out: Json = False,
    lin_seconds: Annotated[
        float | None,
        typer.Option("--lin-seconds", help="Linearizability search time per key, s [20]."),
    ] = None,
    lin_memory: Annotated[
        float | None,
        typer.Option("--lin-memory", help="Linearizability search memory per key, MB [1024]."),
    ] = None,
) -> None:
    """Recompute a run's safety verdict from its files; exit 1 when it has violations.

    A key whose linearizability search runs out of its budget is reported as unknown
    (neither safe nor a violation), with the budget that ran out."""
    from pathlib import Path

    from labctl.checkers import CheckerConfig, check_run_dir

    path = Path(run_dir)
    if not (path / "events.jsonl").exists():
        raise LabError(f"{run_dir}: not a run directory (no events.jsonl)")
    budget: dict[str, Any] = {}
    if lin_seconds is not None:
        budget["lin_seconds"] = lin_seconds
    if lin_memory is not None:
        budget["lin_memory_mb"] = lin_memory
    try:
        CheckerConfig(**budget)
    except ValueError as e:
        raise LabError(str(e)) from None
    result = check_run_dir(path, overrides=budget)
    if json_out:
        print_json(result)
    else:
        for v in result["violations"]:
            typer.echo(f"{v['kind']:<16} t={v['t']:.3f} {','.join(v['nodes'])}: {v['detail']}")
        for line in lin_unknown_lines(result):  # check_run_dir's is a checkers summary
            typer.echo(line)
        typer.echo(
            f"{'safe' if result['safe'] else 'UNSAFE'}: {len(result['violations'])} violations"
        )
    if not result["safe"]:
        raise typer.Exit(1)


def chaos(
    protocol: Annotated[str, typer.Option("--protocol", "-p")] = "raft",
    runs: Annotated[int, typer.Option("--runs", help="How many runs.")] = 20,
    duration: Annotated[str, typer.Option("--duration", help="Length of each run.")] = "30s",
    nodes: Annotated[
        str | None,
        typer.Option("--nodes", help="Cluster sizes to cycle, e.g. 3,5 (pbft: 4,7)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the first run.")] = 1,
    json_out: Json = False,
    lab_dir: LabDir = None,
) -> None:
    """Randomized chaos runs with every fault kind; exit 1 on any violation.

    Each run heals everything before its end; exit 3 when a lab itself failed."""
    import protocols
    from labctl.chaos import run_many
    from protocols.base import DurationError, parse_duration

    if protocol not in protocols.available():
        raise LabError(
            f"unknown protocol {protocol!r} (available: {', '.join(protocols.available())})"
        )
    try:
        seconds = parse_duration(duration)
        if nodes is None:  # sizes where the protocol tolerates one or two faulty nodes
            nodes = "4,7" if protocols.get(protocol).byzantine_tolerant else "3,5"
        sizes = [int(x) for x in nodes.split(",")]
    except (DurationError, ValueError) as e:
        raise LabError(f"bad --duration or --nodes: {e}") from None
    if seconds < 6 or runs < 1 or not all(1 <= n <= 15 for n in sizes):
        raise LabError("--duration must be at least 6s, --runs at least 1, --nodes 1..15")
    result = run_many(protocol, sizes, runs, seconds, seed, lab_dir)
    if json_out:
        print_json(result)
    if result["failed_runs"]:
        raise typer.Exit(3)
    if result["violating_runs"]:
        raise typer.Exit(1)
