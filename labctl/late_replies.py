"""A nemesis that reacts: replies held past a re-election, timed by what the cluster does.

Issue 21 measured why random delays never show a reply of an older term doing harm:
chaos delays last 5-80 ms and a re-election at least one election timeout, and a fixed
timetable lines the delay up with the right candidate about once in fifty runs. This
director (used by explore's slow-replies nemesis, labctl/explore.py) waits for the
moments instead:

1. the leader L is cut off;
2. the moment another node x campaigns, everything the others send x is delayed for
   two to five election timeouts (their answers to x's campaign among it), L is let back
   to everyone but x;
3. L, or another node, wins the next term with the others' votes while x, hearing
   nothing, campaigns in that term too; then the held answers of the older term arrive
   at x;
4. a while later everything heals, and (time permitting) the next attempt starts.

A protocol that ignores replies of an older term only sees slow messages; one that
counts them may count an old vote in the new term, and the term has two leaders.

Like explore's ChurnDirector it sits in front of the run's sink, schedules its faults on
the simulator's clock and records them, so the run's schedule is a plain scenario that
replays and shrinks without it.
"""

from __future__ import annotations

import random
from typing import Any

from faults.targets import current_leader
from protocols.base import events as ev

ATTEMPTS = 3  # per run: each one is about three fault steps


def _soon(t: float) -> float:
    """Just after `t`, in microseconds a scenario file spells exactly."""
    return float(f"{t + 2e-6:.6f}")


class LateRepliesDirector:
    def __init__(self, sink: Any, rng: random.Random, start: float, until: float,
                 timeout: float) -> None:  # fmt: skip
        self.inner = sink
        self.rng = rng
        self.start = start
        self.until = until
        self.timeout = timeout
        self.steps: list[tuple[float, dict[str, Any]]] = []
        self.phase = "idle"
        self.lab: Any = None
        self.old = ""
        self.attempts = 0
        self.deadline = 0.0

    def attach(self, lab: Any) -> None:
        self.lab = lab
        lab.at(self.start, self._begin)

    # the sink protocol: everything goes on to the run's own sink
    def event(self, rec: dict[str, Any]) -> None:
        self.inner.event(rec)
        if self.phase == "candidate":
            self._watch(rec)

    def history(self, rec: dict[str, Any]) -> None:
        self.inner.history(rec)

    def check(self, t: float) -> None:
        self.inner.check(t)
        if self.phase == "candidate" and t > self.deadline:
            self._settle(_soon(self.lab.now))  # nobody campaigned: undo, maybe again

    def say(self, text: str) -> None:
        self.inner.say(text)

    def _fault(self, at: float, **spec: Any) -> None:
        at = round(at, 6)
        self.steps.append((at, spec))
        index = len(self.steps) - 1
        self.lab.at(at, lambda: self.lab.fire_step(index, spec))

    def _begin(self) -> None:
        lab = self.lab
        if lab.now > self.until or self.attempts >= ATTEMPTS:
            self.phase = "done"
            return
        status = {r: lab.node_status(r) for r in lab.ids}
        leader = current_leader(list(lab.ids), status, lab.display)
        if leader is None:
            lab.at(lab.now + 0.05, self._begin)
            return
        self.attempts += 1
        self.old = leader
        at = _soon(lab.now)
        self._fault(at, fault="isolate", node=leader)
        self.phase, self.deadline = "candidate", at + 10 * self.timeout

    def _watch(self, rec: dict[str, Any]) -> None:
        src = rec["src"]
        if rec["kind"] != ev.BECAME_CANDIDATE or src == self.old:
            return
        at = _soon(rec["t"])
        ms = round(self.timeout * 1000 * self.rng.uniform(2.0, 5.0))
        others = [r for r in self.lab.ids if r not in (self.old, src)]
        self._fault(at, fault="delay", ms=ms, **{"from": others, "to": [src]})
        self._fault(at, fault="heal", **{"from": [self.old]})
        self._fault(at, fault="partition", **{"from": [self.old], "to": [src]})
        self._settle(at + ms / 1000 + self.timeout * self.rng.uniform(1.0, 4.0))

    def _settle(self, at: float) -> None:
        self.phase = "settle"
        self._fault(at, fault="heal")
        self.lab.at(at + self.timeout * self.rng.uniform(2.0, 6.0), self._begin)
