"""`labctl sim explore`: generated fault schedules in virtual time, the first violation shrunk.

Each run is a scenario built from its seed: some by the chaos generator (labctl/chaos.py,
every fault kind), the others by one of the nemeses aimed at the classic bugs of
consensus code, whose schedules random faults almost never produce (issue 21 measured
why the hand-seeded bugs were missed). Which nemeses a protocol is offered follows what
it declares (`nemeses`: a drift bound, byzantine modes), never which mutation is on:

- leader-churn: the leader cut off or killed again and again, for about an election
  timeout, under a heavy write load, with a follower kept far behind (killed, or cut off)
  and brought back now and then: new leaders inherit partially replicated entries of
  older terms and a follower more than a batch behind (Raft's Figure 8);
- majority-restart: the leader cut off, then a majority killed (half the time by a power
  loss: unsynced writes gone) and restarted within an election timeout while the
  election runs (a vote forgotten across a restart, an acknowledgement never fsynced);
- ring-flap: the majorities-ring partition on and off (each node sees a majority, no two
  the same);
- pause-past-timeout: the leader paused for just past the election timeout, then resumed
  (a zombie that thinks it still leads);
- drift-at-bound: a drift bound wide or narrow, clocks drifting just inside it (the
  followers fast, or the leader slow), then the leader cut off (leases judged at the
  boundary);
- link-cut: one link between the leader and another node cut, with few writes: the node
  cut off campaigns, up to date, through nodes that still hear the leader (the lease
  that check-quorum's sticky votes back);
- slow-replies: what the others send a candidate held past the next election
  (labctl/late_replies.py; a fixed timetable elsewhere), pre-vote off: replies of an
  older term arriving in a newer one;
- byzantine-leader (protocols with byzantine modes, drawn twice as often there): one
  replica lying in each mode in turn while leadership moves round (an equivocating
  primary, a forger of certificates).
- recovery-race (protocols that declare explicit-prepare recovery events, drawn twice
  as often there): two recoveries of one instance, each cut off at its own moment so
  that each sees a different subset of the replicas, then the first one back
  (labctl/recovery_race.py): accepted replies with different attributes, whose vote
  ballots alone tell the newer (Sutra 2019).

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
from labctl.director import Director, soon
from labctl.late_replies import LateRepliesDirector
from labctl.recovery_race import RecoveryRaceDirector
from labctl.scenario.format import EXPLORE_HEADER, Scenario, Step
from protocols.base import decode_options

NEMESES = ("leader-churn", "majority-restart", "ring-flap", "pause-past-timeout",
           "drift-at-bound", "link-cut", "slow-replies", "byzantine-leader",
           "recovery-race")  # fmt: skip
DURATION = 10.0


def nemeses(protocol: str) -> tuple[str, ...]:
    """The nemeses that mean something for `protocol`, by what it declares (never by which
    mutation is on): clocks and leases only where it has a drift bound, lies only where it
    has byzantine modes, pre-vote turned off only where it has the option, recoveries
    raced only where it declares explicit-prepare recovery events."""
    cls = protocols.get(protocol)
    fields = set(getattr(cls.Options, "__struct_fields__", ()))
    out = []
    for name in NEMESES:
        if name == "drift-at-bound" and "max_drift" not in fields:
            continue
        if name == "byzantine-leader" and not cls.byzantine_modes:
            continue
        if name == "recovery-race" and not getattr(cls, "recovery_events", None):
            continue
        out.append(name)
    return tuple(out)


def base_timeout(protocol: str, options: dict[str, Any]) -> float:
    """The protocol's failure-detection timeout (what "just past the timeout" is past)."""
    opts = decode_options(protocols.get(protocol).Options, options)
    for name in ("election_timeout", "view_change_timeout", "recovery_timeout"):
        if hasattr(opts, name):
            return float(getattr(opts, name))
    return 0.3




def generate(protocol: str, nodes: int, seed: int,
             duration: float = DURATION) -> tuple[Scenario, Director | None]:  # fmt: skip
    """Explore run `seed`: chaos or one nemesis, chosen by the seed; the scenario, and the
    director that adds its faults as the run goes (leader churn, timed by the cluster)."""
    rng = random.Random(f"explore:{seed}")
    menu = nemeses(protocol)
    # The protocol's headline fault twice as often as the rest: leader churn, or for a
    # protocol that tolerates liars, a lying leader, or for one that recovers instances
    # by explicit prepare (leaderless: no leader to churn), racing recoveries.
    headline = next((h for h in ("byzantine-leader", "recovery-race") if h in menu), menu[0])
    which = rng.choice(("chaos", *menu, headline))
    if which == "chaos":
        sc = chaos.random_scenario(protocol, nodes, duration, seed)
        sc.name = f"explore-{protocol}-{seed}"
        sc.description = "explore: chaos schedule"
        return sc, None
    cls = protocols.get(protocol)
    director: Director | None = None
    clients = 4
    options = dict(protocols.get(protocol).short_run_options)
    timeout = base_timeout(protocol, options)
    replicas = [f"r{i}" for i in range(nodes)]
    steps: list[tuple[float, dict[str, Any]]] = []
    rate, target = 120, "leader"
    end = duration - 3.0  # a calm tail, as chaos runs have: the final state can be judged
    t = rng.uniform(0.5, 1.5)

    def step(at: float, **fault: Any) -> None:
        steps.append((round(min(at, end), 4), fault))

    if which == "leader-churn" and cls.ordering == "total" and not cls.byzantine_tolerant \
            and rng.random() < 0.85:  # fmt: skip
        # Leaders to churn: the director times the faults by what the leaders do. Enough
        # clients that a cut-off leader still gets more than a batch of entries.
        rate, clients = rng.choice((300, 600)), 8
        director = ChurnDirector(None, rng, t, end - 1.0)
    elif which == "leader-churn":
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
            # Half the time the majority loses power together (correlated crashes,
            # Alagappan et al. OSDI 2016): what each had not fsynced is gone.
            power = {"power_loss": True} if rng.random() < 0.5 else {}
            for r in group:
                step(at, fault="kill", node=r, **power)
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
    elif which == "link-cut":
        # One link between the leader and one other node, both ways, for a few timeouts:
        # the node cut off campaigns through the others, who still hear the leader. Few
        # writes, so that its log is often as up to date as theirs when it asks.
        rate = rng.choice((5, 10, 20))
        while t < end - 1.0:
            hold = timeout * rng.uniform(1.5, 5.0)
            step(t, fault="partition", **{"from": "leader", "to": rng.choice(replicas)})
            step(t + hold, fault="heal")
            t += hold + timeout * rng.uniform(0.5, 3.0)
    elif which == "slow-replies":
        # What one node sends one other is delayed past a re-election (chaos delays are
        # 5-80 ms, an election >= one timeout), while nodes are cut off and come back:
        # replies of an older term arrive in a newer one. Without pre-vote, where the
        # protocol has the option: terms then move at every timeout, so a late reply
        # meets a newer term (Raft stale-reply: 2 catches in 50 runs with pre-vote, 2 in
        # 25 without).
        if "pre_vote" in set(getattr(cls.Options, "__struct_fields__", ())):
            options["pre_vote"] = False
        if cls.ordering == "total" and not cls.byzantine_tolerant and rng.random() < 0.85:
            # Timed by the campaigns themselves (labctl/late_replies.py).
            director = LateRepliesDirector(None, rng, t, end - 1.0, timeout)
            t = end
        while t < end - 1.0:
            a, b = rng.sample(replicas, 2)
            hold = timeout * rng.uniform(3.0, 8.0)
            ms = round(timeout * 1000 * rng.uniform(1.5, 4.0))
            delay = {"fault": "delay", "from": a, "to": b, "ms": ms}
            step(t, **delay)
            u = t + timeout * rng.uniform(0.0, 1.0)
            while u < t + hold:
                cut = timeout * rng.uniform(0.5, 2.0)
                step(u, fault="isolate", node=rng.choice(["leader", rng.choice(replicas)]))
                step(u + cut, fault="heal")  # what the delay holds still arrives late
                step(u + cut, **delay)
                u += cut + timeout * rng.uniform(0.2, 1.5)
            step(t + hold, fault="heal")
            t += hold + timeout * rng.uniform(0.5, 2.0)
    elif which == "recovery-race":
        # Two recoveries of one instance, each cut off at its own moment so that each
        # sees a different subset of the replicas (labctl/recovery_race.py). Writes to a
        # few keys, so that attributes computed at different moments differ.
        rate, target = rng.choice((100, 200, 400)), "any"  # every replica leads commands
        director = RecoveryRaceDirector(None, rng, t, end - 1.0, timeout, cls.recovery_events)
    elif which == "byzantine-leader":
        # One replica lies, in each of the protocol's modes in turn (so never more than f
        # liars, and the same one: the checkers set aside what a liar says, for the whole
        # run). The leader is cut off again and again, so leadership moves round the
        # replicas and the liar leads in some of its modes (an equivocating primary...).
        modes = list(cls.byzantine_modes)
        rng.shuffle(modes)
        liar = rng.choice(replicas)
        rate, clients = rng.choice((100, 200)), 8
        for mode in modes:
            if t >= end - 1.0:
                break
            phase_end = min(t + timeout * rng.uniform(5.0, 8.0), end - 0.5)
            step(t, fault="byzantine", node=liar, mode=mode)
            u = t + timeout * rng.uniform(0.3, 1.0)
            while u < phase_end - timeout:
                cut = timeout * rng.uniform(1.2, 2.0)
                step(u, fault="isolate", node="leader")
                step(u + cut, fault="heal")
                u += cut + timeout * rng.uniform(0.3, 1.0)
            step(phase_end, fault="byzantine", node=liar, mode="honest")
            t = phase_end + timeout * rng.uniform(0.1, 0.5)
    else:  # drift-at-bound
        # A drift bound wide or narrow, and clocks just inside it: the followers fast, or
        # the leader slow by no more than the bound allows (1 / (1 - d) <= 1 + max_drift);
        # then the leader cut off, so the next one is elected while its lease is judged.
        max_drift = rng.choice((float(options.get("max_drift", 0.05)), 0.2, 0.5))
        options["max_drift"] = max_drift
        while t < end - 1.0:
            if rng.random() < 0.6:
                node, drift = "followers", max_drift * rng.uniform(0.9, 0.999)
            else:
                node = "leader"
                drift = -max_drift / (1 + max_drift) * rng.uniform(0.9, 0.999)
            step(t, fault="clock", node=node, drift=round(drift, 5))
            hold = timeout * rng.uniform(1.0, 5.0)
            step(t + 0.01, fault="isolate", node="leader")
            step(t + hold, fault="heal")
            step(t + hold + 0.01, fault="clock", node="all", drift=0)
            t += hold + timeout * rng.uniform(0.5, 3.0)
    steps.append((end, {"fault": "heal"}))
    sc = Scenario(
        name=f"explore-{protocol}-{seed}", path=f"<explore seed {seed}>",
        description=f"explore: {which} nemesis", protocol=protocol, nodes=nodes, seed=seed,
        duration=duration, options=options, fencing=True,
        workload={"kind": "kv", "rate": rate, "clients": clients, "target": target,
                  "reads": "log,quorum,lease", "keys": 5, "retries": 3, "timeout": 0.25},
        expect={"safe": True},
    )  # fmt: skip
    ordered = sorted(enumerate(steps), key=lambda p: (p[1][0], p[0]))
    sc.steps = [Step(at=at, fault=f, index=i) for i, (_, (at, f)) in enumerate(ordered)]
    return sc, director


def sc_replicas(sc: Scenario) -> list[str]:
    return [f"r{i}" for i in range(sc.nodes)]


# -- a nemesis that reacts --------------------------------------------------------------


class ChurnDirector(Director):
    """Leader churn with partially replicated entries, timed by what the cluster does.

    The schedules that break Raft's commitment rule (paper Figure 8) need faults at
    moments a fixed timetable hits once in thousands of runs: the leader L is cut off
    holding entries nobody else has (clients still reach it); the moment another node c
    wins the election, the others are killed (c's first entry never reaches them) and c
    cut off; they come back, L is reconnected and elected again and catches them up; the
    moment L applies past what was committed before, they are killed again (what L sent
    after that is lost), L cut off, c reconnected. A correct leader applies past that
    point only once its own term's entry is on a majority, and then c cannot win; a leader
    that counted replicas for its old entries has applied entries c will overwrite.

    A Director (labctl/director.py): its run's schedule is a plain scenario (`steps`),
    which replays without it and shrinks as any other."""

    def __init__(self, sink: Any, rng: random.Random, start: float, until: float) -> None:
        super().__init__(sink, rng, start, until)
        self.old = self.candidate = ""
        self.voters: list[str] = []
        self.base = 0

    def watch(self, rec: dict[str, Any]) -> None:
        if self.phase != "idle":
            self._watch(rec)

    def tick(self, t: float) -> None:
        if self.phase not in ("idle", "settle") and t > self.deadline:
            self._give_up()

    def begin(self) -> None:
        lab = self.lab
        if lab.now > self.until:
            return
        leader, status = self.leader()
        if leader is None:
            lab.at(lab.now + 0.05, self.begin)
            return
        self.old, self.base = leader, int(status[leader].get("commit_index") or 0)
        at = soon(lab.now)
        self.fault(at, fault="isolate", node=leader)
        self.phase, self.deadline = "vote", at + 3.0

    def _watch(self, rec: dict[str, Any]) -> None:
        kind, src, t = rec["kind"], rec["src"], rec["t"]
        if self.phase == "vote" and kind == "became_leader" and src != self.old:
            # c won: its voters (everyone but the old leader and c) die before its first
            # entry reaches them, and c is cut off; they come back, the old leader too.
            self.candidate = src
            self.voters = [r for r in self.lab.ids if r not in (self.old, src)
                           and self.lab.nodes[r].protocol is not None]  # fmt: skip
            at = soon(t)
            for r in self.voters:
                self.fault(at, fault="kill", node=r)
            self.fault(at, fault="isolate", node=src)
            back = at + self.rng.uniform(0.005, 0.15)
            for r in self.voters:
                self.fault(back, fault="restart", node=r)
            self.fault(back, fault="heal", **{"from": self.old})
            self.phase, self.deadline = "commit", at + 3.0
        elif self.phase == "commit" and kind == "applied" and src == self.old \
                and isinstance(rec.get("index"), int) and rec["index"] > self.base:  # fmt: skip
            # The old leader applied past the old commit index: whoever acknowledged it
            # dies before the rest of the old leader's entries arrive; c is reconnected.
            at = soon(t)
            for r in self.voters:
                self.fault(at, fault="kill", node=r)
            self.fault(at, fault="isolate", node=self.old)
            self.fault(at, fault="heal", **{"from": self.candidate})
            back = at + self.rng.uniform(0.005, 0.15)
            for r in self.voters:
                self.fault(back, fault="restart", node=r)
            self._settle(at + self.rng.uniform(1.0, 2.0))

    def _settle(self, at: float) -> None:
        # One attempt per run: a later attempt's moments were chosen for the state the
        # earlier one left, so shrinking could not drop the earlier one; a run that
        # violates keeps a schedule of one attempt (five faults), and the next run tries
        # again from its own seed.
        self.phase = "settle"
        self.fault(at, fault="heal")

    def _give_up(self) -> None:
        """The cluster did not do what the next move waits for: undo, and start over."""
        at = soon(self.lab.now)
        for r in self.voters:
            if self.lab.nodes[r].protocol is None:
                self.fault(at, fault="restart", node=r)
        self._settle(at)


# -- running -----------------------------------------------------------------------------


@dataclass
class Outcome:
    kinds: list[str]  # violation kinds, in the order first found
    violations: int
    virtual_s: float
    wall_s: float
    failure: str | None = None
    first: dict[str, Any] = field(default_factory=dict)  # the first violation
    scenario: Scenario | None = None  # what ran, every step in it


def check(sc: Scenario, director: Director | None = None) -> Outcome:
    """Run `sc` in virtual time with the checkers, nothing recorded; with a director,
    `Outcome.scenario` is the run's whole schedule as a plain scenario."""
    started = time.perf_counter()
    sink = simrun.CheckingSink(sc)
    if director is not None:
        director.inner = sink
    lab, failure = simrun.simulate(sc, sink, director=director)
    kinds: list[str] = []
    for v in sink.violations:
        if v["kind"] not in kinds:
            kinds.append(v["kind"])
    if failure and not kinds:
        kinds.append("crash")  # the protocol raised: a finding of its own
    concrete = sc
    if director is not None:
        concrete = _renumber(_copy(sc, steps=sorted(
            [*sc.steps, *(Step(at=at, fault=f, index=0) for at, f in director.steps)],
            key=lambda st: st.at)))  # fmt: skip
    return Outcome(kinds, len(sink.violations), lab.now, time.perf_counter() - started, failure,
                   sink.violations[0] if sink.violations else {}, concrete)  # fmt: skip


# -- shrinking ---------------------------------------------------------------------------


def _copy(sc: Scenario, **changes: Any) -> Scenario:
    out = replace(sc, **changes)
    out.steps = [replace(s) for s in changes.get("steps", sc.steps)]
    workload = changes.get("workload", sc.workload)
    out.workload = dict(workload) if workload else None
    return out


def fault_steps(sc: Scenario) -> int:
    """Steps that inject a fault (heals, restarts and resumes undo one)."""
    return sum(1 for s in sc.steps if s.fault.get("fault") not in ("heal", "restart", "resume"))


def shrink(sc: Scenario, kind: str, budget_s: float = 60.0, max_runs: int = 400,
           progress: Callable[[str], None] | None = None) -> tuple[Scenario, int]:  # fmt: skip
    """The smallest variant of `sc` found that still shows violation `kind`, and how many
    runs that took. Greedy: each change is kept when the violation survives it. The
    budget is this process's CPU time, so a loaded machine shrinks as far as an idle one."""
    deadline = time.process_time() + budget_s
    runs = 0

    def holds(candidate: Scenario) -> bool:
        nonlocal runs
        if runs >= max_runs or time.process_time() > deadline:
            return False
        runs += 1
        return kind in check(candidate).kinds

    best = sc
    # The run need not go on long after the violation showed (those found only at the
    # end, lost writes, are judged when the run ends: try a run that ends sooner).
    first = check(best)
    if kind not in first.kinds:
        return best, 1  # it does not replay: keep it whole (the caller says so)
    runs = 1
    seen = min((v["t"] for v in [first.first] if v), default=best.duration)
    for end in (round(seen + 1.0, 3), round(best.duration / 2, 3)):
        if end < best.duration:
            candidate = _copy(best, duration=end, steps=[x for x in best.steps if x.at <= end])
            if holds(_renumber(candidate)):
                best = candidate
    if best.workload:  # less load runs faster: try it first
        while best.workload and best.workload.get("rate", 0) > 10:
            w = best.workload
            candidate = _copy(best, workload={**w, "rate": max(10, int(w["rate"]) // 2)})
            if not holds(candidate):
                break
            best = candidate
    changed = True
    while changed and runs < max_runs and time.process_time() < deadline:
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
        # Drop a fault with the step that undoes it (a kill and its node's restart): alone,
        # a restart of a running node is a kill of its own, so single drops fail there.
        i = 0
        while i < len(best.steps):
            j = _undo_of(best.steps, i)
            if j is not None:
                steps = [s for k, s in enumerate(best.steps) if k not in (i, j)]
                candidate = _renumber(_copy(best, steps=steps))
                if holds(candidate):
                    best, changed = candidate, True
                    continue
            i += 1
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
        # Fewer nodes: the next smaller size the protocol is tested at (PBFT: 7 -> 4).
        smaller = [n for n in protocols.get(best.protocol).test_sizes if n < best.nodes]
        if smaller:
            candidate = _fewer_nodes(best, max(smaller))
            if candidate is not None and holds(candidate):
                best, changed = candidate, True
        if progress:
            progress(f"shrinking: {len(best.steps)} steps ({fault_steps(best)} faults), "
                     f"{best.duration:g}s, {runs} runs")  # fmt: skip
    return best, runs


def _undo_of(steps: list[Step], i: int) -> int | None:
    """The index of the step that undoes step i: the next restart of the node a kill
    names, the next resume of a paused node; None for anything else."""
    f = steps[i].fault
    undo = {"kill": "restart", "pause": "resume"}.get(f.get("fault", ""))
    if undo is None or not isinstance(f.get("node"), str):
        return None
    for j in range(i + 1, len(steps)):
        g = steps[j].fault
        if g.get("node") == f["node"] and g.get("fault") in (undo, f["fault"]):
            return j if g.get("fault") == undo else None
    return None


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


def finding_comment(protocol: str, seed: int, mutate: str | None, kind: str, path: Path) -> str:
    """The header of a shrunk scenario file: who found what, and how to replay it (`labctl
    scenario run` recognises it by its first line and says timing may not reproduce)."""
    return (f"{EXPLORE_HEADER} -p {protocol} --seed {seed}"
            + (f" --mutate {mutate}" if mutate else "")
            + f"`: {kind}.\nReplay: labctl sim run {path}   (reproduces every time)\n"
            f"On real processes: labctl scenario run {path}   (timing may differ: "
            "the violation may not show)")  # fmt: skip


def write_scenario(sc: Scenario, path: Path, comment: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(scenario_toml(sc, comment))
    return path
