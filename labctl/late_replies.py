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

Like explore's ChurnDirector it is a Director (labctl/director.py): in front of the run's
sink, its faults scheduled on the simulator's clock and recorded, so the run's schedule
is a plain scenario that replays and shrinks without it.
"""

from __future__ import annotations

import random
from typing import Any

from labctl.director import Director, soon
from protocols.base import events as ev

ATTEMPTS = 3  # per run: each one is about three fault steps


class LateRepliesDirector(Director):
    def __init__(self, sink: Any, rng: random.Random, start: float, until: float,
                 timeout: float) -> None:  # fmt: skip
        super().__init__(sink, rng, start, until)
        self.timeout = timeout
        self.old = ""
        self.attempts = 0

    def watch(self, rec: dict[str, Any]) -> None:
        if self.phase == "candidate":
            self._watch(rec)

    def tick(self, t: float) -> None:
        if self.phase == "candidate" and t > self.deadline:
            self._settle(soon(self.lab.now))  # nobody campaigned: undo, maybe again

    def begin(self) -> None:
        lab = self.lab
        if lab.now > self.until or self.attempts >= ATTEMPTS:
            self.phase = "done"
            return
        leader, _ = self.leader()
        if leader is None:
            lab.at(lab.now + 0.05, self.begin)
            return
        self.attempts += 1
        self.old = leader
        at = soon(lab.now)
        self.fault(at, fault="isolate", node=leader)
        self.phase, self.deadline = "candidate", at + 10 * self.timeout

    def _watch(self, rec: dict[str, Any]) -> None:
        src = rec["src"]
        if rec["kind"] != ev.BECAME_CANDIDATE or src == self.old:
            return
        at = soon(rec["t"])
        ms = round(self.timeout * 1000 * self.rng.uniform(2.0, 5.0))
        others = [r for r in self.lab.ids if r not in (self.old, src)]
        self.fault(at, fault="delay", ms=ms, **{"from": others, "to": [src]})
        self.fault(at, fault="heal", **{"from": [self.old]})
        self.fault(at, fault="partition", **{"from": [self.old], "to": [src]})
        self._settle(at + ms / 1000 + self.timeout * self.rng.uniform(1.0, 4.0))

    def _settle(self, at: float) -> None:
        self.phase = "settle"
        self.fault(at, fault="heal")
        self.lab.at(at + self.timeout * self.rng.uniform(2.0, 6.0), self.begin)
