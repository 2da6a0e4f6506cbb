"""A nemesis that reacts: two recoveries of one instance, each seeing a different subset.

Issue 21 measured why EPaxos with one ballot per instance (the tech report's recovery
before Sutra's fix, "On the correctness of Egalitarian Paxos", 2019) passed every random
schedule: in 462 recovery decisions none had two accepted replies with different
attributes, the only case where the ballot of a vote matters. Sutra's counterexample
needs three recoveries of one instance: A accepts attributes X where nobody else hears
it; B, in a higher ballot and with a majority that does not include A, finds no accepted
reply, computes new attributes Y, and commits them where nobody else hears the commit;
A, back, recovers once more and hears both its own X and someone's Y, both merely
accepted. Comparing the ballots the votes were cast in picks Y; with one ballot variable
both look equally recent and X can be committed beside B's Y.

This director (explore's recovery-race nemesis, labctl/explore.py) produces that
schedule for any protocol that declares explicit-prepare recovery events
(`recovery_events` on its class: `start`, `accept`, `decided`, each with `instance`, the
command leader's index first):

1. what a replica L hears is cut: the commands its clients send it reach the others
   as PreAccepts, L hears no reply, and the others start recovering them;
2. the moment a replica A starts recovering one of L's instances, what A sends is cut
   (its Prepare is already on the wire, the replies still reach it): A decides and its
   Accept reaches nobody. Shortly after, if it did, A is cut off both ways, and L is let
   back to the others (not to A);
3. the moment another replica B's recovery of that instance sends its Accept, what B
   sends is cut: B hears the Accept replies, commits, and its Commit reaches nobody;
4. the moment B decides, A is let back (to everyone but B): A's next attempt, or someone
   else's, hears A's X and the others' Y. With five replicas or more the others are cut
   from each other then: only A has a majority without B;
5. a while later everything heals, and (time permitting) the next attempt starts.

A protocol that compares vote ballots commits Y everywhere; one that cannot tell which
vote is newer may commit X beside B's Y (divergence). Like the other directors it is a
Director (labctl/director.py): its faults are scheduled on the simulator's clock and
recorded, so the run's schedule is a plain scenario that replays and shrinks without it.
"""

from __future__ import annotations

import random
from typing import Any

from labctl.director import Director, soon

ATTEMPTS = 6  # per run: each one is four or five fault steps (and three heals)


class RecoveryRaceDirector(Director):
    def __init__(self, sink: Any, rng: random.Random, start: float, until: float,
                 timeout: float, events: dict[str, str]) -> None:  # fmt: skip
        super().__init__(sink, rng, start, until)
        self.timeout = timeout
        self.events = events
        self.attempts = 0
        self.cut = self.first = self.second = ""
        self.instance: list[Any] = []

    def watch(self, rec: dict[str, Any]) -> None:
        if self.phase in ("first", "accepting", "accepted", "second", "third", "race"):
            self._watch(rec)

    def tick(self, t: float) -> None:
        if self.phase in ("first", "second", "third", "race") and t > self.deadline:
            self._settle(soon(self.lab.now))  # the cluster did not get there: undo, again

    def begin(self) -> None:
        lab = self.lab
        if lab.now > self.until or self.attempts >= ATTEMPTS:
            self.phase = "done"
            return
        running = [r for r in lab.ids if lab.nodes[r].protocol is not None]
        if len(running) < len(lab.ids):
            lab.at(lab.now + 0.05, self.begin)
            return
        self.attempts += 1
        self.cut = self.rng.choice(list(lab.ids))
        at = soon(lab.now)
        # What L hears is cut, what it sends is not: its clients' commands still reach
        # the others, pre-accepted there and undecided (L hears no reply), so they start
        # recovering them a recovery timeout later.
        self.fault(at, fault="partition", oneway=True,
                   **{"from": self._others(self.cut), "to": [self.cut]})  # fmt: skip
        self.phase, self.deadline = "first", at + 10 * self.timeout

    def _others(self, *nodes: str) -> list[str]:
        return [r for r in self.lab.ids if r not in nodes]

    def _watch(self, rec: dict[str, Any]) -> None:
        kind, src = rec["kind"], rec["src"]
        instance = rec.get("instance")
        if not isinstance(instance, list) or not instance:
            return
        t = rec["t"]
        if self.phase == "first":
            leader = list(self.lab.ids).index(self.cut)
            if kind != self.events["start"] or src == self.cut or instance[0] != leader:
                return
            # A recovers one of L's instances: its Prepare is out; cut what it sends, so
            # that its Accept reaches nobody (the replies still reach it).
            self.first, self.instance = src, instance
            at = soon(t)
            self.fault(at, fault="partition", oneway=True,
                       **{"from": [src], "to": self._others(src)})  # fmt: skip
            self.phase = "accepting"
            self.lab.at(at + self.rng.uniform(0.02, 0.08), self._accepted)
        elif instance != self.instance:
            return
        elif self.phase == "race":
            if kind == self.events["decided"]:  # A's X or the others' Y: the race is run
                self.deadline = min(self.deadline, t + 2 * self.timeout)
        elif kind == self.events["decided"] and (src != self.second or "by" in rec):
            self._settle(soon(t))  # decided some other way: nothing to race
        elif self.phase == "accepting" and kind == self.events["accept"] and src == self.first:
            self.phase = "accepted"  # X accepted at A alone
        elif self.phase == "second" and kind == self.events["accept"] and src != self.first:
            # B, in a higher ballot, sends its Accept: it hears the replies, but its
            # Commit reaches nobody.
            self.second = src
            self.fault(soon(t), fault="partition", oneway=True,
                       **{"from": [src], "to": self._others(src)})  # fmt: skip
            self.phase, self.deadline = "third", t + 10 * self.timeout
        elif self.phase == "third" and kind == self.events["decided"] and src == self.second:
            # B committed: A back (to everyone but B), to race the others at recovering
            # what they accepted. With five or more, the others are cut from each other:
            # none of them has a majority without A, A has one with them.
            at = soon(t)
            rest = self._others(self.first, src)
            if len(rest) > 1:
                self.fault(at, fault="partition", **{"from": rest, "to": rest})
            self.fault(at, fault="heal", **{"from": [self.first]})
            self.phase, self.deadline = "race", at + 10 * self.timeout

    def _accepted(self) -> None:
        """Some time after A's Prepare: if its Accept went out (to nobody), cut A off and
        let L back to the others; if A decided otherwise, this attempt is over."""
        if self.phase != "accepted":
            if self.phase == "accepting":
                self._settle(soon(self.lab.now))
            return
        at = soon(self.lab.now)
        self.fault(at, fault="heal", to=[self.cut])  # (A's cut towards L too)
        self.fault(at, fault="isolate", node=self.first)
        self.phase, self.deadline = "second", at + 10 * self.timeout

    def _settle(self, at: float) -> None:
        self.phase = "settle"
        self.second = ""
        self.fault(at, fault="heal")
        self.lab.at(at + self.timeout * self.rng.uniform(2.0, 6.0), self.begin)
