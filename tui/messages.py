"""The dashboard's app messages: small dataclasses posted by workers, handled by the app.

Attributes go down (the app folds messages into its `LabModel` and hands it to widgets),
messages come up. Workers post at a bounded rate (the telemetry feed flushes every 100 ms),
and the two high-rate kinds implement `can_replace` so a UI that falls behind skips to the
newest message instead of queueing: Textual asks the older queued message whether the next
one may replace it. Both fold the older message's one-shot content (events, history records)
into the newer one before saying yes, so coalescing never loses an election or a fault.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message


@dataclass(eq=False)
class TelemetryBatch(Message):
    """What the feed gathered from the lab's PUB socket since its last flush.

    `statuses` and `links` are latest-wins; `events` are the notable events (elections,
    faults, exits, violations...) in arrival order.
    """

    t: float  # the source's clock when the batch was flushed
    events: list[dict[str, Any]] = field(default_factory=list)
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    links: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    received: int = 0  # messages read off the socket
    # False for a batch that closes a step of a scripted (fake) lab: steps must stay apart
    # for the charts' one-second buckets to come out the same on every run.
    replaceable: bool = True

    def absorb(self, older: TelemetryBatch) -> None:
        """Fold an older batch into this one (this one's latest values win)."""
        self.events[:0] = older.events
        self.history[:0] = older.history
        self.statuses = {**older.statuses, **self.statuses}
        if self.links is None:
            self.links = older.links
        self.received += older.received

    def can_replace(self, message: Message) -> bool:
        if self.replaceable and isinstance(message, TelemetryBatch):
            message.absorb(self)
            return True
        return False


@dataclass(eq=False)
class StatusPolled(Message):
    """One `status` answer from the supervisor, plus CPU/memory of each node's pid."""

    t: float
    doc: dict[str, Any]
    usage: dict[str, tuple[float, float]] = field(default_factory=dict)  # node -> (cpu %, MB)
    history: list[dict[str, Any]] = field(default_factory=list)  # new history.jsonl records

    def can_replace(self, message: Message) -> bool:
        if isinstance(message, StatusPolled):
            message.history[:0] = self.history
            return True
        return False


@dataclass(eq=False)
class LabUnreachable(Message):
    """A status poll failed: no lab runs in the lab dir, or its supervisor does not answer."""

    reason: str

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, (LabUnreachable, StatusPolled))


@dataclass(eq=False)
class ActionDone(Message):
    """An action (fault, order, swap) finished: `error` is the LabError message when it failed."""

    title: str
    detail: str = ""
    error: str | None = None
    severity: str = "information"  # information | warning | error (Textual's notify)


@dataclass(eq=False)
class LabSwapped(Message):
    """The old run ended and a new lab runs in the same lab dir (swap protocol)."""

    protocol: str
    old_run_dir: str
    new_run_dir: str
    note: str = ""  # what became of the lab's mutation, if it had one
    warnings: list[str] = field(default_factory=list)  # the new size's (PBFT not 3f+1)


@dataclass(eq=False)
class ScenarioAttached(Message):
    """A built-in scenario's lab is up in its own lab dir; the dashboard now shows it."""

    name: str
    protocol: str
    lab_dir: str


@dataclass(eq=False)
class ScenarioDone(Message):
    """A scenario run from the dashboard ended: its contract summary, and the run dir of the
    fresh lab started afterwards in the original lab dir (None when none was started)."""

    summary: dict[str, Any]
    restarted: str | None = None
    error: str | None = None  # the fresh lab could not be started
