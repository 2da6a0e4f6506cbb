"""`labctl sim run|explore`: the lab's scenarios and fault schedules in seeded virtual time."""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import typer

from labctl.cli.common import Json, LabDir, print_json, protocol_class
from labctl.cli.mutants import Mutate
from labctl.cli.scenario import _load, _prepare
from labctl.errors import LabError
from protocols import DEFAULT

app = typer.Typer(help="The simulator: scenarios in virtual time, explore, shrink.")


@app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="A built-in scenario name or a TOML file.")],
    protocol: Annotated[str | None, typer.Option("--protocol", "-p", help="Override.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Override the file's seed.")] = None,
    report: Annotated[
        bool,
        typer.Option("--report/--no-report", help="Write RUN/report.html and print its path."),
    ] = True,
    mutate: Mutate = None,
    json_out: Json = False,
    lab_dir: LabDir = None,
) -> None:
    """Run a scenario (the same file as `scenario run`) in virtual time, with its verdict.

    The run record goes to <lab-dir>/runs/ (lab.json says simulated), so `labctl check RUN`
    works on it. Exit 0 when the expectations are met, 1 if not, 2 for a broken scenario,
    3 when the simulation itself failed (a protocol raised)."""
    from labctl import simrun

    sc = _load(name, protocol)
    _prepare(sc, seed, mutate)
    raise typer.Exit(simrun.run(sc, lab_dir, json_out, report))


def _parse_for(value: str | None) -> float | None:
    from protocols.base import DurationError, parse_duration

    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except DurationError as e:
        raise LabError(f"--for: {e}") from None
    if seconds <= 0:
        raise LabError("--for must be positive")
    return seconds


@app.command("explore")
def explore_cmd(
    protocol: Annotated[str, typer.Option("--protocol", "-p")] = DEFAULT,
    nodes: Annotated[
        str | None, typer.Option("--nodes", help="Cluster sizes to cycle, e.g. 3,5 (pbft: 4,7).")
    ] = None,
    runs: Annotated[int | None, typer.Option("--runs", help="Stop after this many runs.")] = None,
    for_: Annotated[str | None, typer.Option("--for", help="Stop after this long (60s).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the first run.")] = 1,
    duration: Annotated[str, typer.Option("--duration", help="Virtual length of a run.")] = "10s",
    collect: Annotated[
        bool, typer.Option("--collect", help="Go on after a violation (each one shrunk).")
    ] = False,
    shrink_for: Annotated[str, typer.Option("--shrink-for", help="Shrinking budget.")] = "60s",
    mutate: Annotated[
        str | None, typer.Option("--mutate", help="Run a protocol mutation (a seeded bug).")
    ] = None,
    json_out: Json = False,
    lab_dir: LabDir = None,
) -> None:
    """Generated fault schedules (chaos, and nemeses aimed at classic bugs) in virtual time.

    Stops at the first violating run unless --collect: its seed and the shrunk scenario
    (written under <lab-dir>/sim/) are printed. Exit 0 when no run violated, 1 when one
    did, 2 for bad input."""
    from labctl import explore, labdir, simrun
    from protocols.base import DurationError, parse_duration

    cls = protocol_class(protocol)
    try:
        if nodes is None:
            nodes = ",".join(str(n) for n in cls.test_sizes)
        sizes = [int(x) for x in nodes.split(",")]
        seconds = parse_duration(duration)
        shrink_s = parse_duration(shrink_for)
    except (DurationError, ValueError) as e:
        raise LabError(f"bad --nodes, --duration or --shrink-for: {e}") from None
    if not sizes or not all(1 <= n <= 15 for n in sizes):
        raise LabError("--nodes must be sizes between 1 and 15")
    if seconds < 5:
        raise LabError("--duration must be at least 5s (a run ends with 3 s of calm)")
    limit_s = _parse_for(for_)
    if runs is not None and runs < 1:
        raise LabError("--runs must be at least 1")
    if runs is None and limit_s is None:
        runs = 100
    options: dict[str, Any] = {}
    if mutate:
        options["mutate"] = mutate
    _check_options(protocol, options)

    root = labdir.resolve(lab_dir)
    out_dir = root / "sim"
    started = time.perf_counter()
    stats = {"runs": 0, "virtual_s": 0.0, "violating_runs": 0}
    findings: list[dict[str, Any]] = []
    last_progress = 0.0
    i = 0
    while True:
        elapsed = time.perf_counter() - started
        if runs is not None and i >= runs:
            break
        if limit_s is not None and elapsed >= limit_s:
            break
        run_seed = seed + i
        n = sizes[i % len(sizes)]
        i += 1
        sc, director = explore.generate(protocol, n, run_seed, seconds)
        sc.options.update(options)
        outcome = explore.check(sc, director)
        sc = outcome.scenario or sc  # with a director: the schedule it played
        stats["runs"] += 1
        stats["virtual_s"] += outcome.virtual_s
        now = time.perf_counter()
        if now - last_progress >= 1.0 or outcome.kinds:
            last_progress = now
            _progress(protocol, stats, now - started)
        if not outcome.kinds:
            continue
        stats["violating_runs"] += 1
        found_after = now - started
        kind = outcome.kinds[0]
        sys.stderr.write(f"run {stats['runs']} (seed {run_seed}, {n} nodes, {sc.description}): "
                         f"{kind}: {outcome.first.get('detail', outcome.failure)}\n")  # fmt: skip
        small, shrink_runs = explore.shrink(sc, kind, budget_s=shrink_s, progress=_say)
        small.name = f"found-{protocol}-{run_seed}"
        small.description = f"explore found {kind} (seed {run_seed}), shrunk"
        path = out_dir / f"{small.name}.toml"
        comment = explore.finding_comment(protocol, run_seed, mutate, kind, path)
        explore.write_scenario(small, path, comment)
        code, summary = simrun.execute(_load(str(path)), lab_dir, talk=False)
        finding = {
            "seed": run_seed, "nodes": n, "kind": kind, "kinds": outcome.kinds,
            "detail": outcome.first.get("detail", outcome.failure), "nemesis": sc.description,
            "found_after_s": round(found_after, 3), "runs_to_find": stats["runs"],
            "steps": len(sc.steps), "fault_steps": explore.fault_steps(sc),
            "shrunk_steps": len(small.steps), "shrunk_fault_steps": explore.fault_steps(small),
            "shrink_runs": shrink_runs, "scenario": str(path),
            "replay": {"exit": code, "verdict": summary["verdict"],
                       "kinds": sorted({v["kind"] for v in summary["violations"]}),
                       "run_dir": summary["run_dir"]},
        }  # fmt: skip
        findings.append(finding)
        sys.stderr.write(
            f"shrunk to {finding['shrunk_fault_steps']} fault steps "
            f"({finding['shrunk_steps']} steps, {small.duration:g}s, {shrink_runs} runs): {path}\n"
            f"  replay: labctl sim run {path}  -> {summary['verdict']} "
            f"({', '.join(finding['replay']['kinds']) or 'no violation'})\n"
            f"  on real processes: labctl scenario run {path}  (timing may not reproduce it)\n"
        )  # fmt: skip
        if not collect:
            break
    wall = time.perf_counter() - started
    _progress(protocol, stats, wall)
    result = {
        "protocol": protocol, "nodes": sizes, "seed": seed, "mutate": mutate or None,
        "runs": stats["runs"], "virtual_s": round(stats["virtual_s"], 3),
        "wall_s": round(wall, 3), "speed": round(stats["virtual_s"] / wall, 1) if wall else None,
        "runs_per_minute": round(stats["runs"] * 60 / wall, 1) if wall else None,
        "violating_runs": stats["violating_runs"], "findings": findings,
    }  # fmt: skip
    if json_out:
        print_json(result)
    raise typer.Exit(1 if findings else 0)


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")


def _check_options(protocol: str, options: dict[str, Any]) -> None:
    import protocols
    from protocols.base import ConfigError, decode_options

    base = dict(protocols.get(protocol).short_run_options)
    try:
        decode_options(protocols.get(protocol).Options, {**base, **options})
    except ConfigError as e:
        raise LabError(f"protocol {protocol!r}: {e}") from None


def _progress(protocol: str, stats: dict[str, Any], elapsed: float) -> None:
    speed = stats["virtual_s"] / elapsed if elapsed > 0 else 0.0
    sys.stderr.write(f"explore {protocol}: {stats['runs']} runs, {stats['virtual_s']:.0f}s "
                     f"simulated in {elapsed:.1f}s ({speed:.0f}x), "
                     f"{stats['violating_runs']} violating\n")  # fmt: skip
    sys.stderr.flush()
