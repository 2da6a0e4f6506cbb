"""`labctl sim explore`: generated fault schedules in virtual time, the first violation shrunk.

Each run is a scenario built from its seed: half of them by the chaos generator
(labctl/chaos.py, every fault kind), the others by one of the nemeses aimed at the
classic bugs of consensus code, whose schedules random faults almost never produce
(issue 21 measured why the hand-seeded bugs were missed):

- leader-churn: the leader cut off or killed again and again, for about an election
  timeout, under a heavy write load, with a follower kept far behind (killed, or cut off)
  and brought back now and then: new leaders inherit partially replicated entries of
  older terms and a follower more than a batch behind (Raft's Figure 8);
- majority-restart: the leader killed, then a majority killed and restarted within an
  election timeout while the election runs (a vote forgotten across a restart);
- ring-flap: the majorities-ring partition on and off (each node sees a majority, no two
  the same);
- pause-past-timeout: the leader paused for just past the election timeout, then resumed
  (a zombie that thinks it still leads);
- drift-at-bound: a clock drifting just inside the protocol's max_drift, then the leader
  cut off (leases judged at the boundary).

A violating run is shrunk (`shrink`): steps dropped, pauses shortened, steps moved earlier,
the run shortened, the write rate halved, fewer clients and nodes, as long as the same kind
of violation still shows, and written out as a scenario file with its seed.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import protocols
from labctl import chaos, simrun
from labctl.scenario.format import Scenario, Step
from protocols.base import decode_options

NEMESES = ("leader-churn", "majority-restart", "ring-flap", "pause-past-timeout",
           "drift-at-bound")  # fmt: skip
DURATION = 10.0


def base_timeout(protocol: str, options: dict[str, Any]) -> float:
    """The protocol's failure-detection timeout (what "just past the timeout" is past)."""
    opts = decode_options(protocols.get(protocol).Options, options)
    for name in ("election_timeout", "view_change_timeout", "recovery_timeout"):
        if hasattr(opts, name):
            return float(getattr(opts, name))
    return 0.3


def generate(protocol: str, nodes: int, seed: int, duration: float = DURATION) -> Scenario:
    """The scenario of explore run `seed`: chaos or one nemesis, chosen by the seed."""
    rng = random.Random(f"explore:{seed}")
    which = rng.choice(("chaos", *NEMESES, *NEMESES[:1]))  # churn twice as often as the rest
    if which == "chaos":
        sc = chaos.random_scenario(protocol, nodes, duration, seed)
        sc.name = f"explore-{protocol}-{seed}"
        sc.description = "explore: chaos schedule"
        return sc
    options = dict(protocols.get(protocol).short_run_options)
    timeout = base_timeout(protocol, options)
    replicas = [f"r{i}" for i in range(nodes)]
    steps: list[tuple[float, dict[str, Any]]] = []
    rate = 120
    end = duration - 3.0  # a calm tail, as chaos runs have: the final state can be judged
    t = rng.uniform(0.5, 1.5)

    def step(at: float, **fault: Any) -> None:
        steps.append((round(min(at, end), 4), fault))

    if which == "leader-churn":
        rate = rng.choice((200, 400, 800))
        lagger = rng.choice(replicas)
        while t < end - 1.0:
            move = rng.random()
            hold = timeout * rng.uniform(0.3, 3.0)
            if move < 0.25:  # a follower falls behind: down, or cut off, for a while
                lag = rng.uniform(0.2, 1.2)
                if rng.random() < 0.5:
                    step(t, fault="kill", node=lagger)
                    step(t + lag, fault="restart", node=lagger)
                else:
                    step(t, fault="isolate", node=lagger)
                    step(t + lag, fault="heal")
                lagger = rng.choice(replicas)
            elif move < 0.55:
                step(t, fault="isolate", node="leader")
                step(t + hold, fault="heal")
            elif move < 0.8:
                node = rng.choice(replicas)  # kills name a node: its restart must too
                step(t, fault="kill", node=node)
                step(t + hold, fault="restart", node=node)
            else:  # the leader's messages lost or delayed: its entries reach some, not all
                a = rng.choice(replicas)
                others = [r for r in replicas if r != a]
                kind = rng.choice(("loss", "delay"))
                spec: dict[str, Any] = {"fault": kind, "from": a, "to": others}
                if kind == "loss":
                    spec["p"] = round(rng.uniform(0.3, 0.9), 2)
                else:
                    spec["ms"] = round(timeout * 1000 * rng.uniform(0.2, 1.0))
                step(t, **spec)
                step(t + hold, fault="heal")
            t += hold + timeout * rng.uniform(0.2, 2.0)
    elif which == "majority-restart":
        majority = len(replicas) // 2 + 1
        while t < end - 1.0:
            step(t, fault="isolate", node="leader")  # an election starts
            group = rng.sample(replicas, majority)
            at = t + timeout * rng.uniform(0.0, 1.5)
            for r in group:
                step(at, fault="kill", node=r)
            step(at + timeout * rng.uniform(0.0, 1.0), fault="heal")
            for r in group:
                step(at + timeout * rng.uniform(0.05, 1.0), fault="restart", node=r)
            t = at + timeout * rng.uniform(2.0, 8.0)
    elif which == "ring-flap":
        while t < end - 1.0:
            hold = timeout * rng.uniform(0.5, 4.0)
            step(t, fault="partition", shape="majorities-ring")
            step(t + hold, fault="heal")
            t += hold + timeout * rng.uniform(0.1, 2.0)
    elif which == "pause-past-timeout":
        while t < end - 1.0:
            hold = timeout * rng.uniform(1.0, 2.5)
            step(t, fault="pause", node=rng.choice(["leader", rng.choice(replicas)]),
                 **{"for": round(hold, 4)})  # fmt: skip
            t += hold + timeout * rng.uniform(0.5, 4.0)
    else:  # drift-at-bound
        max_drift = float(options.get("max_drift", 0.05))
        while t < end - 1.0:
            node = rng.choice(["leader", rng.choice(replicas)])
            drift = round(max_drift * rng.uniform(0.9, 0.999) * rng.choice((-1, 1)), 5)
            step(t, fault="clock", node=node, drift=drift)
            hold = timeout * rng.uniform(1.0, 5.0)
            step(t + 0.01, fault="isolate", node="leader")
            step(t + hold, fault="heal")
            step(t + hold + 0.01, fault="clock", node=node, drift=0)
            t += hold + timeout * rng.uniform(0.5, 3.0)
    steps.append((end, {"fault": "heal"}))
    sc = Scenario(
        name=f"explore-{protocol}-{seed}", path=f"<explore seed {seed}>",
        description=f"explore: {which} nemesis", protocol=protocol, nodes=nodes, seed=seed,
        duration=duration, options=options, fencing=True,
        workload={"kind": "kv", "rate": rate, "clients": 4, "target": "leader",
                  "reads": "log,quorum,lease", "keys": 5, "retries": 3, "timeout": 0.25},
        expect={"safe": True},
    )  # fmt: skip
    ordered = sorted(enumerate(steps), key=lambda p: (p[1][0], p[0]))
    sc.steps = [Step(at=at, fault=f, index=i) for i, (_, (at, f)) in enumerate(ordered)]
    return sc


def sc_replicas(sc: Scenario) -> list[str]:
    return [f"r{i}" for i in range(sc.nodes)]


# -- running -----------------------------------------------------------------------------


@dataclass
class Outcome:
    kinds: list[str]  # violation kinds, in the order first found
    violations: int
    virtual_s: float
    wall_s: float
    failure: str | None = None
    first: dict[str, Any] = field(default_factory=dict)  # the first violation


def check(sc: Scenario) -> Outcome:
    """Run `sc` in virtual time with the checkers, nothing recorded."""
    started = time.perf_counter()
    sink = simrun.CheckingSink(sc)
    lab, failure = simrun.simulate(sc, sink)
    kinds: list[str] = []
    for v in sink.violations:
        if v["kind"] not in kinds:
            kinds.append(v["kind"])
    if failure and not kinds:
        kinds.append("crash")  # the protocol raised: a finding of its own
    return Outcome(kinds, len(sink.violations), lab.now, time.perf_counter() - started, failure,
                   sink.violations[0] if sink.violations else {})  # fmt: skip


# -- shrinking ---------------------------------------------------------------------------


def _copy(sc: Scenario, **changes: Any) -> Scenario:
    out = replace(sc, **changes)
    out.steps = [replace(s) for s in (changes.get("steps") or sc.steps)]
    out.workload = dict(changes.get("workload") or sc.workload or {}) or None
    return out


def fault_steps(sc: Scenario) -> int:
    """Steps that inject a fault (heals, restarts and resumes undo one)."""
    return sum(1 for s in sc.steps if s.fault.get("fault") not in ("heal", "restart", "resume"))


def shrink(sc: Scenario, kind: str, budget_s: float = 60.0, max_runs: int = 400,
           progress: Callable[[str], None] | None = None) -> tuple[Scenario, int]:  # fmt: skip
    """The smallest variant of `sc` found that still shows violation `kind`, and how many
    runs that took. Greedy: each change is kept when the violation survives it."""
    deadline = time.perf_counter() + budget_s
    runs = 0

    def holds(candidate: Scenario) -> bool:
        nonlocal runs
        if runs >= max_runs or time.perf_counter() > deadline:
            return False
        runs += 1
        return kind in check(candidate).kinds

    best = sc
    changed = True
    while changed and runs < max_runs and time.perf_counter() < deadline:
        changed = False
        # Drop steps: big chunks first, then one at a time.
        chunk = max(1, len(best.steps) // 2)
        while chunk >= 1:
            i = 0
            while i < len(best.steps):
                steps = best.steps[:i] + best.steps[i + chunk :]
                candidate = _renumber(_copy(best, steps=steps))
                if holds(candidate):
                    best, changed = candidate, True
                else:
                    i += chunk
            chunk //= 2
        # Shorten pauses, move steps earlier.
        for i, s in enumerate(best.steps):
            if s.fault.get("fault") == "pause" and isinstance(s.fault.get("for"), (int, float)):
                shorter = dict(s.fault, **{"for": round(float(s.fault["for"]) / 2, 4)})
                candidate = _with_step(best, i, replace(s, fault=shorter))
                if holds(candidate):
                    best, changed = candidate, True
            earlier = best.steps[i - 1].at if i > 0 else 0.0
            here = best.steps[i]
            if here.at - earlier > 0.05:
                moved = replace(here, at=round((here.at + earlier) / 2, 4))
                candidate = _with_step(best, i, moved)
                if holds(candidate):
                    best, changed = candidate, True
        # A shorter run: just past the last step, or half as long.
        last = max((s.at for s in best.steps), default=0.0)
        for duration in (round(last + 1.0, 3), round(best.duration / 2, 3)):
            if last < duration < best.duration:
                candidate = _copy(best, duration=duration)
                if holds(candidate):
                    best, changed = candidate, True
        # Less load, fewer clients, fewer nodes.
        if best.workload:
            w = best.workload
            if w.get("rate", 0) > 10:
                candidate = _copy(best, workload={**w, "rate": max(10, int(w["rate"]) // 2)})
                if holds(candidate):
                    best, changed = candidate, True
            if w.get("clients", 1) > 1:
                candidate = _copy(best, workload={**w, "clients": 1})
                if holds(candidate):
                    best, changed = candidate, True
        if best.nodes > 3 and best.protocol != "pbft":
            candidate = _fewer_nodes(best, best.nodes - 2)
            if candidate is not None and holds(candidate):
                best, changed = candidate, True
        if progress:
            progress(f"shrinking: {len(best.steps)} steps ({fault_steps(best)} faults), "
                     f"{best.duration:g}s, {runs} runs")  # fmt: skip
    return best, runs


def _renumber(sc: Scenario) -> Scenario:
    sc.steps = [replace(s, index=i) for i, s in enumerate(sc.steps)]
    return sc


def _with_step(sc: Scenario, i: int, step: Step) -> Scenario:
    steps = list(sc.steps)
    steps[i] = step
    steps.sort(key=lambda s: s.at)
    return _renumber(_copy(sc, steps=steps))


def _fewer_nodes(sc: Scenario, n: int) -> Scenario | None:
    names = {f"r{i}" for i in range(n, sc.nodes)}

    def mentions(f: dict[str, Any]) -> bool:
        vals = [f.get("node"), *_as_list(f.get("from")), *_as_list(f.get("to"))]
        return any(v in names for v in vals)

    steps = [s for s in sc.steps if not mentions(s.fault)]
    return _renumber(_copy(sc, nodes=n, steps=steps))


def _as_list(v: Any) -> list[Any]:
    if v is None:
        return []
    return list(v) if isinstance(v, (list, tuple)) else [v]


# -- the file ----------------------------------------------------------------------------


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def scenario_toml(sc: Scenario, comment: str = "") -> str:
    """`sc` as a scenario file `labctl sim run` and `labctl scenario run` take."""
    lines = [f"# {line}" for line in comment.splitlines()] + ([""] if comment else [])
    lines += [f"name = {_toml_value(sc.name)}", f"description = {_toml_value(sc.description)}",
              f"protocol = {_toml_value(sc.protocol)}", f"nodes = {sc.nodes}",
              f"seed = {sc.seed}", f"duration = {_toml_value(f'{sc.duration:g}s')}"]  # fmt: skip
    if sc.options:
        lines += ["", "[options]"] + [f"{k} = {_toml_value(v)}" for k, v in sc.options.items()]
    lines += ["", "[broker]", f"fencing = {_toml_value(sc.fencing)}"]
    if sc.workload:
        w = dict(sc.workload)
        if isinstance(w.get("reads"), str):
            w["reads"] = w["reads"].split(",")
        if isinstance(w.get("timeout"), (int, float)):
            w["timeout"] = f"{w['timeout'] * 1000:g}ms"
        lines += ["", "[workload]"] + [f"{k} = {_toml_value(v)}" for k, v in w.items()]
    for s in sc.steps:
        lines += ["", "[[step]]", f"at = {_toml_value(f'{s.at:g}s')}"]
        lines += [f"{_key(k)} = {_toml_value(v)}" for k, v in s.fault.items()]
    lines += ["", "[expect]"] + [f"{k} = {_toml_value(v)}" for k, v in sc.expect.items()]
    return "\n".join(lines) + "\n"


def _key(k: str) -> str:
    return k if k.replace("_", "").isalnum() else _toml_value(k)


def write_scenario(sc: Scenario, path: Path, comment: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(scenario_toml(sc, comment))
    return path
