"""Client requests at a Raft node: proposals, ReadIndex and lease reads (thesis chapter 6).

A mixin of RaftProtocol. A follower answers "not_leader" with the leader it believes in.
The leader appends writes (and "log" reads) to its log; they are answered by the runtime
after they commit (Committed.reply). Reads in "quorum" mode wait for a heartbeat round
that a majority acknowledges after the read arrived; in "lease" mode the leader answers
at once while its lease holds. Either way a new leader answers no read before an entry of
its own term is committed: until then its commit index may lag behind what the previous
leader committed (section 8).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocols.base import ClientRequest, Command, ReadReady, Ready, reply, request_problem
from protocols.base import events as ev
from protocols.raft.log import RaftLog
from protocols.raft.messages import Entry, LogEntries
from protocols.raft.options import Options
from protocols.raft.reads import PendingRead, ReadTracker

LEADER = "leader"


class Clients:
    # State owned by RaftProtocol (see core.py).
    me: str
    quorum: int
    opts: Options
    role: str
    term: int
    leader: str | None
    log: RaftLog
    commit: int
    proposals: dict[int, str]
    reads: ReadTracker
    lease_expiry: float | None
    now: float
    out: Ready
    _batching: bool

    if TYPE_CHECKING:  # provided by the Replication mixin

        def _bcast_append(self, send_if_empty: bool = True) -> None: ...
        def _bcast_heartbeat(self) -> int: ...
        def _maybe_commit(self) -> bool: ...
        def _committed_in_term(self) -> bool: ...
        def _leases(self) -> bool: ...

    def _handle_client(self, client: str, request: ClientRequest) -> None:
        command = request.command
        problem = request_problem(request)
        if problem:
            self.out.send(client, reply(request, "fail", self.me, error=problem))
        elif self.role != LEADER:
            self.out.send(client, reply(request, "not_leader", self.me, leader=self.leader))
        elif command.op == "get" and request.read_mode != "log":
            self._read(client, request)
        else:
            # A write, or a read through the log: it is answered once committed. A retried
            # request may be appended twice; the state machine's session table applies it
            # once, and both entries are still replicated and committed like any other.
            self._append(command)

    def _append(self, command: Command | None) -> None:
        entry = Entry(self.term, self.log.last_index + 1, command)
        self.log.append([entry])
        # Our own new entry: the AppendEntries carrying it may leave while it is written.
        self.out.persist_overtakable(LogEntries((entry,)))
        if command is not None:
            self.proposals[entry.index] = command.request_id
        if self._batching:
            return  # on_clients replicates the whole bundle at its end
        self._bcast_append()
        self._maybe_commit()  # a cluster of one commits alone

    # -- reads --------------------------------------------------------------------------

    def _read(self, client: str, request: ClientRequest) -> None:
        # Mutation "read-index-before-commit" skips the wait below: a new leader's commit
        # index may lag what its predecessor committed and acknowledged (thesis 6.4, §8).
        if not self._committed_in_term() and self.opts.mutate != "read-index-before-commit":
            self.reads.waiting_commit.append((client, request))
            return
        if request.read_mode == "lease" and self._lease_valid():
            # Thesis 6.4.1: no other leader can exist yet, so our state is current.
            self._read_ready(client, request, self.commit)
            return
        if self.quorum == 1:
            self._read_ready(client, request, self.commit)
            return
        # ReadIndex (thesis 6.4): remember the commit index, then make sure we were still
        # the leader after the read arrived, by a round a majority acknowledges.
        round_ = self._bcast_heartbeat()
        self.reads.waiting.append(PendingRead(client, request, self.commit, round_))

    def _read_ready(self, client: str, request: ClientRequest, index: int) -> None:
        # The state machine counts applied commands, not a new leader's empty entries: ask
        # it to wait for the last command at or before the read index.
        at = self.log.last_command_at_or_before(index)
        self.out.reads.append(ReadReady(request, client, at, self.term))

    def _lease_valid(self) -> bool:
        return self.lease_expiry is not None and self.now < self.lease_expiry

    def _on_round_acked(self, src: str, round_: int) -> None:
        if not self.reads.ack(src, round_):
            return
        for r in self.reads.pop_confirmed():
            self._read_ready(r.client, r.request, r.index)
        self._renew_lease()

    def _renew_lease(self) -> None:
        # Only check-quorum makes followers refuse votes for an election timeout after
        # hearing from us; without it there is no lease to hold.
        if not self._leases():
            return
        sent = self.reads.confirmed_sent_at()
        if sent is None:
            return
        expiry = sent + self.opts.lease_duration
        if expiry > self.now and (self.lease_expiry is None or expiry > self.lease_expiry):
            self.lease_expiry = expiry
            self.out.event(ev.LEASE, term=self.term, expiry=expiry)

    def _abandon_reads(self, leader: str | None) -> None:
        """We stopped leading: reads are safe to refuse (nothing was applied for them)."""
        for client, request in self.reads.drain():
            self.out.send(client, reply(request, "not_leader", self.me, leader=leader))
        self.reads.reset()
