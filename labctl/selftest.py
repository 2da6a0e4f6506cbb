"""`labctl selftest`: the lab tested on bugs it must catch, and on protocols it must not flag.

For each named mutation of a protocol (labctl/mutants.py): the simulator's explore runs
(labctl/explore.py: chaos and the nemeses aimed at classic bugs) with the mutation on,
until one violates or the budget is spent; the violating run is shrunk to a small
scenario; that scenario is replayed on real processes a few times (timing differs there,
so "reproduced k of n" is a measurement, not a promise). The lab-wide mutations (the
broker's, the workload's) need orders and a broker, which explore's kv runs do not have:
each is probed with the built-in scenario that shows its bug, over seeds.

A mutation that declares a probe (`Mutation.probe`: the built-in scenario that shows its
bug, with the broker's fencing as the bug needs) is tried on it first. The lab-wide
mutations need one (explore's runs are kv, with no orders); they run on the protocol
selftest was asked for, or on the lab's default protocol when it tests several.
A mutation explore does not catch within its budget gets its targeted schedule, when its
protocol declares one (`Protocol.targeted`, protocols/targeted.py: the one situation its
bug needs, on the in-memory network), which must show the violation with the mutation
and none without; the table says which way each was caught.

Then the other half: the protocol without a mutation, explored for the same budget, must
show no violation at all. The verdict is ok only when every mutation was caught in the
simulator and the correct protocol stayed clean.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import protocols
from labctl import explore, mutants
from labctl.scenario.format import Scenario, set_mutation

DURATION = 10.0  # virtual seconds per explore run
SMALL_STEPS = 5  # fault steps a shrunk schedule should not exceed (issue 21's figure)


@dataclass
class Row:
    """One line of the table: a mutation (or "none": the correct protocol) and its fate."""

    protocol: str
    mutation: str
    expected: list[str]  # the violation kinds it declares ([] for the correct protocol)
    caught: bool = False
    how: str = "explore"  # or "scenario NAME": the targeted schedule that caught it
    kind: str | None = None
    seed: int | None = None
    runs: int = 0
    # CPU seconds of this process to the first violation (or the whole budget): the
    # budget is CPU time, as shrinking's is, so a loaded machine explores as far as an
    # idle one (at load 15 on two cores, 60 s of wall time gave 10 raft runs).
    seconds: float = 0.0
    steps: int | None = None  # fault steps after shrinking
    scenario: str | None = None
    detail: str = ""
    replays: list[str] = field(default_factory=list)  # the real runs' violation kinds
    reports: list[str] = field(default_factory=list)  # the replays' report.html

    @property
    def reproduced(self) -> int:
        return sum(1 for kinds in self.replays if kinds)

    def as_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol, "mutation": self.mutation, "expected": self.expected,
            "caught": self.caught, "how": self.how, "kind": self.kind, "seed": self.seed,
            "runs": self.runs,
            "seconds": round(self.seconds, 2), "shrunk_fault_steps": self.steps,
            "scenario": self.scenario, "detail": self.detail,
            "real": {"runs": len(self.replays), "reproduced": self.reproduced,
                     "kinds": self.replays, "reports": self.reports},
        }  # fmt: skip


def _mutated(sc: Scenario, name: str) -> Scenario:
    if name:
        set_mutation(sc, name)
    return sc


def explore_one(protocol: str, mutation: str, budget_s: float, seed: int,
                sizes: list[int]) -> tuple[Row, Scenario | None]:  # fmt: skip
    """Explore with `mutation` ("" for none) until a violation or the budget."""
    declared = [] if not mutation else list(mutants.resolve(protocol, mutation).violations)
    row = Row(protocol, mutation or "none", declared)
    started = time.process_time()
    i = 0
    while time.process_time() - started < budget_s:
        run_seed = seed + i
        n = sizes[i % len(sizes)]
        i += 1
        sc, director = explore.generate(protocol, n, run_seed, DURATION)
        sc = _mutated(sc, mutation)
        outcome = explore.check(sc, director)
        row.runs += 1
        if outcome.kinds:
            # The kind the mutation declares, when the run shows one (a split brain may
            # show a lease overlap first): shrinking keeps that one.
            kind = next((k for k in outcome.kinds if k in declared), outcome.kinds[0])
            row.caught, row.kind, row.seed = True, kind, run_seed
            row.detail = str(outcome.first.get("detail", outcome.failure or ""))
            row.seconds = time.process_time() - started
            return row, outcome.scenario or sc
    row.seconds = time.process_time() - started
    return row, None


def probe_one(protocol: str, mutation: str, budget_s: float,
              seed: int) -> tuple[Row, Scenario | None]:  # fmt: skip
    """A mutation on the built-in scenario its declaration names (`Mutation.probe`), in a
    lab of `protocol`, over seeds."""
    from labctl.scenario.library import resolve

    m = mutants.resolve(protocol, mutation)
    assert m.probe is not None
    row = Row(protocol, mutation, list(m.violations))
    row.how = f"scenario {m.probe.scenario}"
    started = time.process_time()
    i = 0
    while time.process_time() - started < budget_s and i < 50:
        sc = resolve(m.probe.scenario, protocol)
        if m.probe.fencing is not None:
            sc.fencing = m.probe.fencing
        sc.seed = seed + i
        i += 1
        sc = _mutated(sc, mutation)
        outcome = explore.check(sc)
        row.runs += 1
        if outcome.kinds:
            row.caught, row.kind, row.seed = True, outcome.kinds[0], sc.seed
            row.detail = str(outcome.first.get("detail", ""))
            row.seconds = time.process_time() - started
            return row, sc
    row.seconds = time.process_time() - started
    return row, None


def targeted_one(protocol: str, mutation: str, row: Row, seeds: int = 3) -> Row:
    """The mutation's targeted schedule over a few seeds: caught when it shows a declared
    violation with the mutation and nothing without it."""
    from protocols.targeted import schedules

    cls = protocols.get(protocol)
    schedule = schedules(cls).get(mutation)
    if schedule is None:
        return row
    started = time.process_time()
    for seed in range(1, seeds + 1):
        found = schedule(mutation, seed) & set(row.expected)
        clean = not schedule("", seed)
        row.runs += 2
        if found and clean:
            row.caught, row.how, row.seed = True, "targeted schedule", seed
            row.kind = sorted(found)[0]
            where = cls.targeted.partition(":")[0]
            row.detail = f"{where}, clean without the mutation"
            break
    row.seconds += time.process_time() - started
    return row


def selftest(
    names: list[str],
    budget_s: float,
    seed: int = 1,
    replays: int = 3,
    shrink_s: float = 30.0,
    mutations: list[str] | None = None,
    lab_dir: str | None = None,
    out_dir: Path | None = None,
    say: Callable[[str], None] = lambda text: None,
    report: bool = True,
) -> dict[str, Any]:
    """The table for protocols `names` (each mutation, then the correct protocol) and
    the lab-wide mutations; `mutations` limits it to those names. With `report`, each
    real replay gets RUN/report.html, its path printed."""
    from labctl.report.hook import after_run
    from labctl.scenario import runner

    rows: list[Row] = []
    work: list[tuple[str, str]] = []
    for name in names:
        for m in protocols.get(name).mutations:
            if mutations is None or m.name in mutations:
                work.append((name, m.name))
        if mutations is None:
            work.append((name, ""))
    # The lab-wide mutations (broker, workload) are the lab's, not a protocol's: a lab of
    # the one protocol asked for carries them, or of the default one among several.
    host = names[0] if len(names) == 1 else protocols.DEFAULT
    for m in mutants.lab_wide():
        if (mutations is None and len(names) > 1) or (mutations and m.name in mutations):
            work.append(("", m.name))
    for protocol, mutation in work:
        label = f"{protocol or 'lab'} {mutation or '(no mutation)'}"
        say(f"selftest: {label}: exploring for up to {budget_s:g}s")
        row, found = None, None
        probe = mutants.resolve(protocol or host, mutation).probe if mutation else None
        if probe is not None:
            row, found = probe_one(protocol or host, mutation,
                                   budget_s / 2 if protocol else budget_s, seed)  # fmt: skip
        sizes = [4] if protocol and protocols.get(protocol).byzantine_tolerant else [3, 5]
        if protocol and found is None:
            spent = row.seconds if row is not None else 0.0
            row, found = explore_one(protocol, mutation, budget_s - spent, seed, sizes)
        assert row is not None
        rows.append(row)
        if not mutation:
            say(f"  {row.runs} runs, {'VIOLATION ' + str(row.kind) if row.caught else 'clean'}")
            continue
        if found is None or row.kind is None:
            if protocol:
                targeted_one(protocol, mutation, row)
            if row.caught:
                say(f"  explore missed it; its targeted schedule caught it: {row.kind}")
            else:
                say(f"  NOT CAUGHT in {row.runs} runs")
            continue
        small, _ = explore.shrink(found, row.kind, budget_s=shrink_s)
        row.steps = explore.fault_steps(small)
        left = budget_s - row.seconds
        if protocol and row.steps > SMALL_STEPS and left > 0 and found.nodes > min(sizes):
            # Found at the larger size, and it stays large: what is left of the budget
            # looks for it at the smallest size, and the smaller schedule is kept.
            again, other = explore_one(protocol, mutation, left, (row.seed or seed) + 1,
                                       [min(sizes)])  # fmt: skip
            if other is not None and again.kind == row.kind:
                smaller, _ = explore.shrink(other, row.kind, budget_s=shrink_s)
                if explore.fault_steps(smaller) < row.steps:
                    small, row.steps, row.seed = smaller, explore.fault_steps(smaller), again.seed
                    row.runs += again.runs
        small.name = f"selftest-{row.protocol}-{mutation}"
        if out_dir is not None:
            path = out_dir / f"{small.name}.toml"
            explore.write_scenario(small, path, f"labctl selftest: {mutation} caught as "
                                   f"{row.kind} (seed {row.seed}), shrunk")  # fmt: skip
            row.scenario = str(path)
        say(f"  caught: {row.kind} (seed {row.seed}, {row.runs} runs, {row.seconds:.1f}s), "
            f"shrunk to {row.steps} fault steps")  # fmt: skip
        for _ in range(replays):
            _, summary = runner.execute(_mutated(small, mutation), lab_dir)
            kinds = ",".join(sorted({v["kind"] for v in summary["violations"]}))
            row.replays.append(kinds)
            # As `scenario run` does (a replay is one): a page for each, the one that did
            # not reproduce as much as the one that did ("0 of 3": a reader wants to see why).
            page = after_run(summary.get("run_dir"), report and summary.get("verdict") != "error")
            if page is not None:
                row.reports.append(str(page))
        if replays:
            say(f"  on real processes: {row.reproduced} of {replays}")
    missed = [r for r in rows if r.mutation != "none" and not r.caught]
    flagged = [r for r in rows if r.mutation == "none" and r.caught]
    return {
        "protocols": names,
        "budget_s": budget_s,
        "seed": seed,
        "rows": [r.as_dict() for r in rows],
        "missed": [f"{r.protocol} {r.mutation}" for r in missed],
        "false_alarms": [f"{r.protocol}: {r.kind}" for r in flagged],
        "ok": not missed and not flagged,
    }


def table(result: dict[str, Any]) -> list[str]:
    """The human table: mutation, caught (checker, seed, time, steps), real reproductions."""
    lines = [f"{'protocol':<8} {'mutation':<25} {'caught by':<16} {'how':<20} {'seed':>5} "
             f"{'cpu':>6} {'runs':>5} {'steps':>5}  real"]  # fmt: skip
    for r in result["rows"]:
        real = r["real"]
        if r["mutation"] == "none":
            verdict = f"VIOLATION {r['kind']}" if r["caught"] else "clean (0 violations)"
            lines.append(f"{r['protocol']:<8} {'(none)':<25} {verdict:<16} {'explore':<20} "
                         f"{'':>5} {r['seconds']:>5.0f}s {r['runs']:>5}")  # fmt: skip
            continue
        caught = r["kind"] if r["caught"] else "NOT CAUGHT"
        steps = "" if r["shrunk_fault_steps"] is None else str(r["shrunk_fault_steps"])
        seed = "" if r["seed"] is None else str(r["seed"])
        rep = f"{real['reproduced']}/{real['runs']}" if real["runs"] else "-"
        head = f"{r['protocol']:<8} {r['mutation']:<25} {caught:<16} {r['how']:<20}"
        lines.append(f"{head} {seed:>5} {r['seconds']:>5.1f}s {r['runs']:>5} {steps:>5}  {rep}")
    problems = [*(f"missed {m}" for m in result["missed"]),
                *(f"false alarm {f}" for f in result["false_alarms"])]  # fmt: skip
    lines.append("selftest: " + ("ok" if result["ok"] else "FAILED: " + "; ".join(problems)))
    return lines
