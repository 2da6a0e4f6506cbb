"""Log replication (paper section 5.3), commitment (5.4.2) and snapshot install (7).

A mixin of RaftProtocol: the leader's side (send_append with flow control, handling
AppendResponse, maybe_commit) and the follower's side (handle_append, handle_snapshot),
plus applying committed entries. It reads and writes the protocol's state directly; the
attributes it relies on are declared below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from protocols.base import BrokerWrite, Committed, Ready, SnapshotImage
from protocols.base.effects import AppliedOrders
from protocols.raft.log import RaftLog
from protocols.raft.messages import (
    AppendEntries,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    LogEntries,
    SnapshotRecord,
)
from protocols.raft.options import Options
from protocols.raft.progress import PROBE, REPLICATE, SNAPSHOT, Progress
from protocols.raft.reads import ReadTracker

if TYPE_CHECKING:
    import msgspec

    from protocols.base import ClientRequest

LEADER = "leader"


class Replication:
    # State owned by RaftProtocol (see core.py).
    me: str
    peers: tuple[str, ...]
    quorum: int
    opts: Options
    role: str
    term: int
    log: RaftLog
    snapshot: SnapshotRecord | None
    commit: int
    applied: int
    progress: dict[str, Progress]
    proposals: dict[int, str]
    applied_orders: AppliedOrders  # a retried order's side effect is sent once
    reads: ReadTracker
    now: float
    out: Ready

    if TYPE_CHECKING:  # provided by RaftProtocol and the Clients mixin

        def _drop(self, reason: str) -> None: ...
        def _on_round_acked(self, src: str, round_: int) -> None: ...
        def _read(self, client: str, request: ClientRequest) -> None: ...
        def durable_state(self) -> list[msgspec.Struct]: ...

    # -- leader: sending ---------------------------------------------------------------

    def _send_append(self, peer: str, send_if_empty: bool = True) -> bool:
        """Send `peer` what it lacks, if flow control allows. True if a message went out."""
        pr = self.progress[peer]
        if pr.paused():
            return False
        prev_index = pr.next - 1
        prev_term = self.log.term_at(prev_index)
        if prev_term is None:
            # What it needs next was compacted away: only a snapshot can catch it up.
            return self._send_snapshot(peer, pr)
        entries = self.log.slice(pr.next, self.opts.max_batch)
        if not entries and not send_if_empty:
            return False
        msg = AppendEntries(
            self.term, prev_index, prev_term, tuple(entries), self.commit, self.reads.round
        )
        # It carries only entries (already durable, or persisted by this very batch): it
        # may leave while our own fsync runs. Our term is durable unless this batch
        # persists it, and then the batch's fence (`Ready.seal`) holds it back.
        self.out.send_parallel(peer, msg)
        pr.sent_entries(entries[-1].index if entries else prev_index, len(entries))
        return True

    def _send_snapshot(self, peer: str, pr: Progress) -> bool:
        snap = self.snapshot
        if snap is None:
            raise AssertionError(f"log compacted to {self.log.snapshot_index} without a snapshot")
        self.out.send(
            peer, InstallSnapshot(self.term, snap.index, snap.term, snap.data, self.reads.round)
        )
        pr.become_snapshot(snap.index, self.now)
        return True

    def _bcast_append(self, send_if_empty: bool = True) -> None:
        for peer in self.peers:
            self._send_append(peer, send_if_empty)

    def _bcast_heartbeat(self) -> int:
        """Start a new round: heartbeats carry it, and its acknowledgements confirm reads
        and renew the lease. Returns the round."""
        round_ = self.reads.new_round(self.now)
        for peer in self.peers:
            # Capped at what the follower is known to match: above that its log may still
            # hold entries of another leader, which must not be committed (etcd does too).
            commit = min(self.progress[peer].match, self.commit)
            self.out.send(peer, Heartbeat(self.term, commit, round_))
        return round_

    # -- leader: receiving -------------------------------------------------------------

    def _handle_append_response(self, src: str, pr: Progress, m: AppendResponse) -> None:
        if m.index > self.log.last_index or m.hint_index > m.index:
            self._drop("impossible_index")  # we never sent anything there
            return
        self._on_round_acked(src, m.round)
        if not m.success:
            # Fast backup (end of section 5.3): skip every entry of ours whose term is above
            # the follower's hint term, a whole conflicting term per round trip.
            next_probe = m.hint_index
            if m.hint_term > 0:
                next_probe, _ = self.log.find_conflict_by_term(m.hint_index, m.hint_term)
            if m.lost and pr.match > 0:
                # Its WAL was corrupt: it came back with an older state of its log, which
                # may lack entries it acknowledged (Alagappan et al., FAST 2018), so our
                # match for it is void. Never below what it holds, `next` would stay above
                # its log forever; probe again from its hint, and count nothing of it until
                # an AppendEntries succeeds there (lowering a match only delays commits).
                pr.match = 0
                pr.become_probe()
                pr.next = max(1, min(m.index, next_probe + 1))
                self._send_append(src)
                return
            if pr.maybe_decr_to(m.index, next_probe):
                if pr.state == REPLICATE:
                    pr.become_probe()
                self._send_append(src)
            return
        if pr.maybe_update(m.index) or (pr.match == m.index and pr.state == PROBE):
            if pr.state == PROBE:
                pr.become_replicate()  # we know where it matches: pipeline from here
            elif pr.state == SNAPSHOT and pr.match + 1 >= self.log.first_index:
                pr.become_probe()
                pr.become_replicate()
            elif pr.state == REPLICATE:
                pr.free_le(m.index)
            if self._maybe_commit():
                self._bcast_append()  # followers learn the new commit index promptly
            while self._send_append(src, send_if_empty=False):
                pass  # as much as the window allows

    def _handle_heartbeat_response(self, src: str, pr: Progress, m: HeartbeatResponse) -> None:
        self._on_round_acked(src, m.round)
        if pr.state == PROBE:
            pr.probe_sent = False  # the probe may have been lost: allow another
        pr.free_first()
        if pr.match < self.log.last_index:
            self._send_append(src)

    def _maybe_commit(self) -> bool:
        """Advance commit to the highest index a majority holds, if it is of our term.

        Section 5.4.2 (Figure 8): an entry of an earlier term is never committed by
        counting replicas, since a later leader could still overwrite it; it is committed
        indirectly, by the Log Matching Property, once an entry of our term above it is."""
        matches = sorted([self.log.last_index, *(pr.match for pr in self.progress.values())])
        index = matches[len(matches) - self.quorum]
        # Mutation "no-figure8" counts replicas for an entry of any term: Figure 8's leader
        # S1 (term 4) then commits S1's term-2 entry, which S5 (term 3) later overwrites.
        own_term = self.log.term_at(index) == self.term or self.opts.mutate == "no-figure8"
        if index > self.commit and own_term:
            self._commit_to(index)
            return True
        return False

    # -- follower -----------------------------------------------------------------------

    def _handle_append(self, src: str, m: AppendEntries) -> None:
        if m.prev_index < self.commit:
            # Everything up to our commit index already matches the leader: say so, and the
            # leader resends from there.
            self.out.send(src, AppendResponse(self.term, True, self.commit, round=m.round))
            return
        if not self.log.matches(m.prev_index, m.prev_term):
            # Figure 2, AppendEntries rule 2, with the hint for the fast backup.
            hint_index = min(m.prev_index, self.log.last_index)
            hint_index, hint_term = self.log.find_conflict_by_term(hint_index, m.prev_term)
            self.out.send(
                src,
                AppendResponse(self.term, False, m.prev_index, hint_index, hint_term, m.round,
                               lost=self.repairing),
            )  # fmt: skip
            return
        last_new = m.prev_index + len(m.entries)
        conflict = self.log.find_conflict(m.entries)
        if conflict:
            # Rules 3 and 4: drop the conflicting suffix, append what is new. An entry we
            # already hold is never truncated by a stale, shorter AppendEntries.
            new = m.entries[conflict - m.prev_index - 1 :]
            self.log.append(new)
            if self.opts.mutate == "ack-before-fsync":
                # Mutation: written without an fsync of their own, acknowledged at once. The
                # leader counts this replica for entries a power loss takes back.
                self.out.persist_after.append(LogEntries(tuple(new)))
            else:
                self.out.persist.append(LogEntries(tuple(new)))
        # Rule 5: commit no further than what this message proves we share with the leader.
        self._commit_to(min(m.commit, last_new))
        self.out.send(src, AppendResponse(self.term, True, last_new, round=m.round))

    def _handle_heartbeat(self, src: str, m: Heartbeat) -> None:
        self._commit_to(min(m.commit, self.log.last_index))
        if self.repairing and m.commit > self.log.last_index:
            # The leader's commit is capped at our match, so it counts us for entries we
            # no longer hold (a corrupt WAL), and at idle it sends no AppendEntries that
            # we could reject: say so, as a rejection of its commit point, with our end.
            last = self.log.last_index
            self.out.send(src, AppendResponse(self.term, False, m.commit, last,
                                              self.log.last_term, m.round, lost=True))  # fmt: skip
        self.out.send(src, HeartbeatResponse(self.term, m.round))

    def _handle_snapshot(self, src: str, m: InstallSnapshot) -> None:
        if m.index <= self.commit:
            self.out.send(src, AppendResponse(self.term, True, self.commit, round=m.round))
            return
        if self.log.matches(m.index, m.snap_term):
            # Section 7: the snapshot describes a prefix of our log; keep what follows it.
            # The leader only snapshots applied entries, so all of it is committed.
            self._commit_to(m.index)
            self.out.send(src, AppendResponse(self.term, True, self.commit, round=m.round))
            return
        # Otherwise our whole log is superseded: discard it and take the image, if it is
        # one: a leader only sends images its state machine made, so anything else is
        # forged or corrupt and must not reach the WAL (it would fail every restart).
        problem = self.config.check_image(m.data, m.index)
        if problem is not None:
            self._drop("bad_snapshot")
            return
        record = SnapshotRecord(m.index, m.snap_term, m.data)
        self.log.compact(m.index, m.snap_term)
        self.snapshot = record
        self.out.compact_to(self.durable_state())
        self.commit = self.applied = m.index
        self.out.restore = SnapshotImage(m.index, m.snap_term, m.data)
        self.out.durable_floor(m.index, self.config.replicas)
        self.out.send(src, AppendResponse(self.term, True, m.index, round=m.round))

    # -- applying -----------------------------------------------------------------------

    def _commit_to(self, index: int) -> None:
        if index <= self.commit:
            return
        self.commit = index
        self._apply()
        if self.role == LEADER and self.reads.waiting_commit and self._committed_in_term():
            # Our first entry is committed: reads held back until now may proceed (sec. 8).
            held, self.reads.waiting_commit = self.reads.waiting_commit, []
            for client, request in held:
                self._read(client, request)

    def _committed_in_term(self) -> bool:
        return self.log.term_at(self.commit) == self.term

    def _apply(self) -> None:
        """Hand every newly committed command to the state machine, in index order."""
        while self.applied < self.commit:
            index = self.applied + 1
            entry = self.log.entry(index)
            self.applied = index
            command = entry.command
            if command is None:
                continue  # a leader's empty entry: nothing to apply
            self.applied_bytes += command_size(command)
            accepted = self.proposals.pop(index, None) == command.request_id
            self.out.committed.append(Committed(index, entry.term, command, reply=accepted))
            first = command.op == "order" and self.applied_orders.first(command.request_id)
            if self.role == LEADER and first and entry.term == self.term:
                # Only the leader of the entry's own term sends its side effect: that
                # leader applies it too (it is still leader when it commits it, or it was
                # deposed and a later leader must not send it again: the old leader may
                # have sent it already, and the broker would execute one order twice).
                # An order whose leader died before applying it is never sent, which the
                # summary counts (at most once, not at least once).
                # The fencing token is our term: a broker that has seen a later leader's
                # token rejects this write if we were deposed meanwhile.
                self.out.send(
                    "broker",
                    BrokerWrite(
                        token=self.term,
                        node=self.me,
                        seq=index,
                        request_id=command.request_id,
                        order=command.order,
                    ),
                )
        if (
            self.applied - self.log.snapshot_index >= self.opts.snapshot_threshold
            or self.applied_bytes >= self.opts.snapshot_bytes
        ):
            self.out.want_snapshot = True


def command_size(command: Any) -> int:
    """What a command weighs in the log, for the byte-triggered snapshot."""
    return len(command.key or "") + len(command.value or "") + 64
