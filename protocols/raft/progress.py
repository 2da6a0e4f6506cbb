"""The leader's view of one follower: match/next indices and flow control.

As in etcd-io/raft's tracker, a follower is in one of three states:

- probe: we do not know where its log matches ours; send one AppendEntries and wait for
  the answer (or the next heartbeat response) before sending another;
- replicate: the log matches up to `match`; send optimistically (pipelining), advancing
  `next` past what is in flight, but never more than `max_inflight` unacknowledged
  messages, so a slow follower cannot make the leader queue unbounded messages for it;
- snapshot: it needs entries we compacted; an InstallSnapshot is in flight, send nothing
  else until it is answered (or given up on).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

PROBE = "probe"
REPLICATE = "replicate"
SNAPSHOT = "snapshot"


@dataclass(slots=True)
class Progress:
    next: int
    max_inflight: int
    match: int = 0
    state: str = PROBE
    probe_sent: bool = False  # probe: one message is out, wait for its answer
    inflight: deque[int] = field(default_factory=deque)  # last index of each message out
    pending_snapshot: int = 0
    snapshot_sent_at: float = 0.0
    recent_active: bool = False  # heard from in this check-quorum period

    def paused(self) -> bool:
        if self.state == PROBE:
            return self.probe_sent
        if self.state == REPLICATE:
            return len(self.inflight) >= self.max_inflight
        return True

    def become_probe(self) -> None:
        # After a snapshot the follower holds at least the snapshot's index.
        if self.state == SNAPSHOT:
            self.next = max(self.match + 1, self.pending_snapshot + 1)
        else:
            self.next = self.match + 1
        self.state = PROBE
        self.probe_sent = False
        self.pending_snapshot = 0
        self.inflight.clear()

    def become_replicate(self) -> None:
        self.state = REPLICATE
        self.next = self.match + 1
        self.probe_sent = False
        self.pending_snapshot = 0
        self.inflight.clear()

    def become_snapshot(self, index: int, now: float) -> None:
        self.state = SNAPSHOT
        self.pending_snapshot = index
        self.snapshot_sent_at = now
        self.probe_sent = False
        self.inflight.clear()

    def sent_entries(self, last: int, count: int) -> None:
        """Record an AppendEntries whose last entry is `last` (count entries) going out."""
        if self.state == REPLICATE:
            if count:
                self.next = last + 1
                self.inflight.append(last)
        elif self.state == PROBE:
            self.probe_sent = True

    def maybe_update(self, index: int) -> bool:
        """The follower matches us up to `index`; False if that is old news."""
        updated = index > self.match
        if updated:
            self.match = index
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        return updated

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """The follower rejected prev_index `rejected`; back `next` off. False if stale."""
        if self.state == REPLICATE:
            # A rejection at or below match answers an older message: ignore it.
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False  # not the probe we are waiting on
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    def free_le(self, index: int) -> None:
        """Messages up to `index` have arrived: their inflight slots are free."""
        while self.inflight and self.inflight[0] <= index:
            self.inflight.popleft()

    def free_first(self) -> None:
        """Free one slot on a heartbeat response: a lost AppendEntries must not leave the
        window full forever (the next send then exposes the gap and we probe)."""
        if self.state == REPLICATE and len(self.inflight) >= self.max_inflight:
            self.inflight.popleft()

    def describe(self) -> dict[str, int | str]:
        return {
            "state": self.state,
            "match": self.match,
            "next": self.next,
            "inflight": len(self.inflight),
        }
