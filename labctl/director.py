"""What every reacting nemesis of `sim explore` shares: a sink in front of the run's sink.

A director (explore's ChurnDirector, late_replies' LateRepliesDirector) watches the
records go by and schedules faults on the simulator's clock the moment the cluster does
what it waits for, recording each one: the run's schedule (`steps`) is then a plain
scenario that replays and shrinks without it. Subclasses say what to watch (`watch`, for
every event) and what to do when a run's check time passes (`tick`).
"""

from __future__ import annotations

import random
from typing import Any

from faults.targets import current_leader


def soon(t: float) -> float:
    """A time just after `t` that a scenario file spells exactly (microseconds): a fault
    the director fires "at once" fires then, so the written schedule replays it exactly."""
    return float(f"{t + 2e-6:.6f}")


class Director:
    def __init__(self, sink: Any, rng: random.Random, start: float, until: float) -> None:
        self.inner = sink
        self.rng = rng
        self.start = start
        self.until = until
        self.steps: list[tuple[float, dict[str, Any]]] = []
        self.phase = "idle"
        self.lab: Any = None
        self.deadline = 0.0

    def attach(self, lab: Any) -> None:
        self.lab = lab
        lab.at(self.start, self.begin)

    # the sink protocol: everything goes on to the run's own sink
    def event(self, rec: dict[str, Any]) -> None:
        self.inner.event(rec)
        self.watch(rec)

    def history(self, rec: dict[str, Any]) -> None:
        self.inner.history(rec)

    def check(self, t: float) -> None:
        self.inner.check(t)
        self.tick(t)

    def say(self, text: str) -> None:
        self.inner.say(text)

    # what a director does
    def begin(self) -> None:
        raise NotImplementedError

    def watch(self, rec: dict[str, Any]) -> None:
        """One event the run emitted."""

    def tick(self, t: float) -> None:
        """The run's check time has reached `t`."""

    def fault(self, at: float, **spec: Any) -> None:
        """Schedule one fault step at `at` and record it in the run's schedule."""
        at = round(at, 6)
        self.steps.append((at, spec))
        index = len(self.steps) - 1
        self.lab.at(at, lambda: self.lab.fire_step(index, spec))

    def leader(self) -> tuple[str | None, dict[str, dict[str, Any]]]:
        """The leader every node names now (None: not yet), with the nodes' status."""
        lab = self.lab
        status = {r: lab.node_status(r) for r in lab.ids}
        return current_leader(list(lab.ids), status, lab.display), status
