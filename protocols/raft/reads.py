"""Leader-side read bookkeeping: heartbeat rounds, the lease they grant, waiting reads.

A round is one broadcast to every follower at a send time (the leader's clock). A
follower that answers a message carrying round r in our term was following us when it
got it, which was after r was sent. Once a majority (counting the leader) has answered
round r:

- ReadIndex (thesis section 6.4): every read registered before round r was sent may be
  answered at the commit index it recorded: no other leader could have committed
  anything newer at that point.
- Lease (thesis section 6.4.1): each of those followers will not vote for anyone else
  for an election timeout after it heard from us (the sticky-vote rule of check-quorum),
  so no other leader can exist before sent_at(r) + election_timeout by their clocks; with
  clocks drifting at most `max_drift`, the leader may serve reads alone until
  sent_at(r) + election_timeout / (1 + max_drift) by its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols.base import ClientRequest


@dataclass(frozen=True, slots=True)
class PendingRead:
    client: str
    request: ClientRequest
    index: int  # the commit index when the read arrived (its read index)
    round: int  # answered once a majority has acknowledged this round


class ReadTracker:
    def __init__(self, peers: tuple[str, ...], quorum: int, leases: bool = True) -> None:
        self.peers = peers
        self.quorum = quorum
        # Send times only matter for leases; without them a leader cut off for long would
        # pile up one per heartbeat for nothing.
        self.leases = leases
        self.reset()

    def reset(self) -> None:
        """Forget everything: a new leadership (or none) starts from round 0."""
        self.round = 0
        self.sent_at: dict[int, float] = {}
        self.acked: dict[str, int] = dict.fromkeys(self.peers, 0)
        self.confirmed = 0  # the highest round a majority has acknowledged
        self.waiting: list[PendingRead] = []  # for their round to be confirmed
        self.waiting_commit: list[tuple[str, ClientRequest]] = []  # for a commit in our term

    def new_round(self, now: float) -> int:
        self.round += 1
        if self.leases:
            self.sent_at[self.round] = now
        return self.round

    def ack(self, peer: str, round_: int) -> bool:
        """`peer` answered round `round_`. True if that confirmed a newer round."""
        if round_ <= self.acked.get(peer, round_) or round_ > self.round:
            return False
        self.acked[peer] = round_
        # The leader itself is always at the latest round.
        rounds = sorted([self.round, *self.acked.values()], reverse=True)
        confirmed = rounds[self.quorum - 1]
        if confirmed <= self.confirmed:
            return False
        self.confirmed = confirmed
        for r in [r for r in self.sent_at if r < confirmed]:
            del self.sent_at[r]
        return True

    def confirmed_sent_at(self) -> float | None:
        """The send time of the latest round a majority acknowledged."""
        return self.sent_at.get(self.confirmed) if self.confirmed else None

    def pop_confirmed(self) -> list[PendingRead]:
        ready = [r for r in self.waiting if r.round <= self.confirmed]
        if ready:
            self.waiting = [r for r in self.waiting if r.round > self.confirmed]
        return ready

    def drain(self) -> list[tuple[str, ClientRequest]]:
        """Every read still waiting, of either kind (the leader is stepping down)."""
        out = [(r.client, r.request) for r in self.waiting] + self.waiting_commit
        self.waiting = []
        self.waiting_commit = []
        return out

    def __len__(self) -> int:
        return len(self.waiting) + len(self.waiting_commit)
