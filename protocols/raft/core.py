"""RaftProtocol: the inputs, the term rules, elections and the role state machine.

Shaped like etcd-io/raft: every peer message goes through `step`, which applies the term
rules (paper section 5.1, plus the pre-vote and check-quorum refinements of the thesis,
chapters 6 and 9) and then hands the message to the current role's step function.
`_become_follower / _become_pre_candidate / _become_candidate / _become_leader` swap the
step and tick functions; impossible transitions raise. Log replication lives in
replication.py, client requests and reads in clients.py.

Time arrives as `now` (the node's clock); the protocol keeps deadlines, not tick counts,
and asks for the earliest one through `Ready.next_deadline`.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, ClassVar

import msgspec

from protocols.base import ClientRequest, NodeConfig, Ready, SnapshotImage
from protocols.base import events as ev
from protocols.base.batching import BatchingProtocol
from protocols.base.effects import AppliedOrders
from protocols.display import DEFAULT_ROLES, Role
from protocols.raft.clients import Clients
from protocols.raft.log import RaftLog
from protocols.raft.messages import (
    MESSAGES,
    RECORDS,
    AppendEntries,
    AppendResponse,
    HardState,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    LogEntries,
    RequestVote,
    SnapshotRecord,
    VoteResponse,
    well_formed,
)
from protocols.raft.mutations import MUTATIONS
from protocols.raft.options import Options
from protocols.raft.progress import SNAPSHOT, Progress
from protocols.raft.reads import ReadTracker
from protocols.raft.replication import Replication, command_size

FOLLOWER = "follower"
PRE_CANDIDATE = "pre_candidate"
CANDIDATE = "candidate"
LEADER = "leader"

# Messages only a leader of their term sends: receiving one means that leader exists.
FROM_LEADER = (AppendEntries, Heartbeat, InstallSnapshot)
# Answers to what a candidate or a leader asked.
REPLIES = (VoteResponse, AppendResponse, HeartbeatResponse)


class RaftProtocol(Replication, Clients, BatchingProtocol):
    name: ClassVar[str] = "raft"
    description: ClassVar[str] = (
        "Raft: majority votes with pre-vote and check-quorum, pipelined replication, "
        "ReadIndex and lease reads, snapshots"
    )
    Options = Options
    mutations = MUTATIONS
    targeted = "protocols.raft.targeted:SCHEDULES"
    messages = MESSAGES
    records = RECORDS
    default_nodes: ClassVar[int] = 3
    # The runtime's state machine keeps the session table (paper section 8): a request
    # committed twice is applied once. Raft itself only has to stay safe when it happens.
    exactly_once: ClassVar[bool] = True
    reports_durable_floor: ClassVar[bool] = True  # every snapshot, once compacted to it
    # A replica with a corrupt WAL rejoins as a follower that neither votes nor campaigns
    # until a leader has repaired it (see `repairing`).
    repairs_corruption: ClassVar[bool] = True
    # A 30 s chaos run never reaches 10,000 entries: snapshot (and install snapshots on
    # followers that fell behind) under the faults too.
    short_run_options: ClassVar[dict[str, Any]] = {"snapshot_threshold": 500,
                                                   "catch_up_entries": 100}  # fmt: skip
    # The default vocabulary and columns, and a pre-vote candidate campaigning too.
    roles = (*DEFAULT_ROLES,
             Role(PRE_CANDIDATE, candidate=True, pre_vote=True, glyph="░", colour="#fcbf7f"))

    def __init__(self, config: NodeConfig) -> None:
        super().__init__(config)
        self.check_config(config)
        self.opts: Options = config.options
        if self.opts.mutate == "no-check-quorum-lease":
            # Mutation: check-quorum off (no sticky votes, no stepping down without a
            # quorum), lease reads still served. The lease rests on followers refusing
            # votes for an election timeout; without the rule nothing backs it.
            self.opts = msgspec.structs.replace(self.opts, check_quorum=False)
        self.me = config.node_id
        self.peers = config.peers
        self.quorum = config.quorum
        self.rng = config.rng

        # Persistent state (Figure 2), written through Ready.persist.
        self.term = 0
        self.vote: str | None = None
        self.log = RaftLog()
        self.snapshot: SnapshotRecord | None = None
        # Volatile state.
        self.role = FOLLOWER
        self.leader: str | None = None
        self.commit = 0
        self.applied = 0
        self.votes: dict[str, bool] = {}
        # Leader state.
        self.progress: dict[str, Progress] = {}
        self.proposals: dict[int, str] = {}  # index -> request id accepted from a client
        self.applied_orders = AppliedOrders()  # their side effects leave once
        self.reads = ReadTracker(self.peers, self.quorum, leases=self._leases())
        self.lease_expiry: float | None = None
        # Deadlines, node clock.
        self.election_deadline = math.inf
        self.heartbeat_deadline = math.inf
        self.check_quorum_deadline = math.inf
        self.leader_contact = -math.inf  # when we last heard from a leader (or started)

        self.drops: Counter[str] = Counter()
        self.applied_bytes = 0  # command bytes applied since the last snapshot
        # Protocol-aware recovery (Alagappan et al., FAST 2018, section 4): a node whose
        # log was corrupt may have lost entries it acknowledged and the vote it gave, so a
        # vote from it could elect a leader without a committed entry, or twice in a term.
        # It follows, and it acknowledges what it holds (an ack describes the log it has
        # now, after log matching, which is true), but stands for no election until it
        # holds everything a leader had committed when it first heard from one, up to an
        # entry of that leader's own term. Its vote goes only to a candidate in a term
        # above any it may have voted in and with a log at least as up to date as the one
        # it had written (both read from the valid records after the corrupt one); with
        # no such evidence it grants none. Without that vote a majority of damaged nodes
        # could never elect the one intact node that can repair them.
        self.repairing = config.damaged
        self.repair_target: int | None = None
        self.damaged_term, self.damaged_last = _high_water(config.damaged_tail)
        self.elections = 0
        self._durable_term = 0
        self._persisted_hard_state = HardState(0, None)
        self._batching = False  # on_clients: append now, replicate once at the end
        self._step_role = self._step_follower
        self._tick_role = self._tick_election

    # -- inputs -------------------------------------------------------------------------

    def start(self, now: float, recovered: list[msgspec.Struct]) -> Ready:
        self._begin(now, starting=True)
        for record in recovered:
            self._recover(record)
        self._persisted_hard_state = HardState(self.term, self.vote)
        self._durable_term = self.term  # what "forget-term" keeps writing
        if self.snapshot is not None:
            # The runtime's state machine starts empty; the snapshot is its starting point.
            s = self.snapshot
            self.out.restore = SnapshotImage(s.index, s.term, s.data)
            self.out.durable_floor(s.index, self.config.replicas)
        # Commit is volatile (Figure 2): entries after the snapshot are applied again once
        # a leader tells us they are committed.
        self.commit = self.applied = self.log.snapshot_index
        # A node that acknowledged a leader just before crashing must not help elect
        # another while that leader's lease may still run: restart counts as contact.
        self.leader_contact = now
        self._become_follower(self.term, None)
        self.out.event(ev.BECAME_FOLLOWER, term=self.term, leader=None)
        return self._finish()

    def on_message(self, now: float, src: str, msg: msgspec.Struct) -> Ready:
        self._begin(now)
        if src not in self.peers:
            self._drop("unknown_node")
        elif not isinstance(msg, MESSAGES):
            self._drop("unknown_message")
        elif not well_formed(msg):
            self._drop("malformed")
        else:
            self.step(src, msg)
        return self._finish()

    def on_client(self, now: float, client: str, request: ClientRequest) -> Ready:
        if not isinstance(request, ClientRequest):
            raise TypeError(f"on_client needs a ClientRequest, got {type(request).__name__}")
        self._begin(now)
        self._handle_client(client, request)
        return self._finish()

    def on_clients(self, now: float, client: str, requests: list[ClientRequest]) -> Ready:
        """A bundle of requests: appended together, then replicated in one AppendEntries
        per follower, not one each (flow control would otherwise spend its whole window
        on single-entry messages before batching starts)."""
        self._begin(now)
        self._batching = True
        try:
            for request in requests:
                if not isinstance(request, ClientRequest):
                    raise TypeError(
                        f"on_clients needs ClientRequests, got {type(request).__name__}"
                    )
                self._handle_client(client, request)
        finally:
            self._batching = False
        if self.role == LEADER:
            for peer in self.peers:
                while self._send_append(peer, send_if_empty=False):
                    pass  # max_batch entries a message, until flow control says wait
            self._maybe_commit()  # a cluster of one commits alone
        return self._finish()

    def on_tick(self, now: float) -> Ready:
        self._begin(now)
        self._tick_role()
        return self._finish()

    def on_snapshot(self, now: float, image: SnapshotImage) -> Ready:
        self._begin(now)
        if image.index > self.applied:
            raise ValueError(f"snapshot at {image.index} is beyond applied index {self.applied}")
        if image.index > self.log.snapshot_index:
            term = self.log.term_at(image.index)
            if term != image.term:
                raise ValueError(
                    f"snapshot at {image.index} claims term {image.term}, the log has {term}"
                )
            record = SnapshotRecord(image.index, term, image.data)
            # Keep some entries the snapshot already covers: a follower a batch or two
            # behind then gets entries, not the whole state machine (etcd does the same);
            # no more of them than a quarter of snapshot_bytes, or large entries would
            # stay behind as dead WAL.
            keep, weight, budget = 0, 0, self.opts.snapshot_bytes // 4
            while keep < self.opts.catch_up_entries and image.index - keep > self.log.offset:
                entry = self.log.entry(image.index - keep)
                weight += command_size(entry.command) if entry.command is not None else 0
                if weight > budget:
                    break
                keep += 1
            self.log.compact(image.index, term, keep=keep)
            self.applied_bytes = 0
            self.snapshot = record
            self.out.compact_to(self.durable_state())
            self.out.durable_floor(image.index, self.config.replicas)
        return self._finish()

    def durable_state(self) -> list[msgspec.Struct]:
        """Everything that must survive a crash, as WAL records: the WAL is rewritten with
        exactly this after a snapshot, so it does not grow with the whole history."""
        hard = self._hard_state()
        self._persisted_hard_state = hard
        records: list[msgspec.Struct] = [hard]
        if self.snapshot is not None:
            records.append(self.snapshot)
        rest = self.log.slice(self.log.snapshot_index + 1, self.log.last_index)
        if rest:
            records.append(LogEntries(tuple(rest)))
        return records

    def _seal(self, out: Ready) -> None:
        hard = self._hard_state()
        if hard != self._persisted_hard_state:
            # Term and vote reach the disk before any message of this batch leaves: a vote
            # forgotten in a crash could be given twice in one term (section 5.2). Not
            # overtakable: the fence holds this batch's parallel appends back too.
            out.persist.insert(0, hard)
            self._persisted_hard_state = hard
        out.next_deadline = self._next_deadline()

    def _hard_state(self) -> HardState:
        """The term and vote as they must be written (Figure 2's persistent state)."""
        if self.opts.mutate == "forget-vote":
            # Mutation: the vote stays in memory. Without it on disk, a node that restarts
            # within the term votes again, and two candidates win the same term (5.2).
            return HardState(self.term, None)
        if self.opts.mutate == "forget-term":
            # Mutation: the term stays in memory (the vote is written, with the term the
            # node started with). Restarted, the node is back in an old term: it takes a
            # later term from the next candidate with no vote in it, and votes twice.
            return HardState(self._durable_term, self.vote)
        return HardState(self.term, self.vote)

    def _leases(self) -> bool:
        """Whether this leader may hold a lease: only check-quorum's sticky votes back one."""
        return self.opts.check_quorum or self.opts.mutate == "no-check-quorum-lease"

    def _recover(self, record: msgspec.Struct) -> None:
        if isinstance(record, HardState):
            self.term, self.vote = record.term, record.vote
        elif isinstance(record, LogEntries):
            self.log.append(record.entries)
        elif isinstance(record, SnapshotRecord):
            self.log.compact(record.index, record.term)
            self.snapshot = record
        else:
            raise TypeError(f"not a raft record: {type(record).__name__}")

    def _drop(self, reason: str) -> None:
        self.drops[reason] += 1

    # -- step: the term rules, then the role --------------------------------------------

    def step(self, src: str, msg: Any) -> None:
        if msg.term > self.term:
            if isinstance(msg, RequestVote) and self._in_lease():
                # Thesis 4.2.3: a node that heard from a live leader less than an election
                # timeout ago ignores vote requests (even raising no term), so a node that
                # was cut off cannot depose a healthy leader; leases rely on this too.
                self._drop("vote_in_lease")
                return
            if isinstance(msg, RequestVote) and msg.pre_vote:
                pass  # a pre-vote changes nothing here, whatever its term
            elif isinstance(msg, VoteResponse) and msg.pre_vote and msg.granted:
                pass  # carries the term we would campaign in, not a term anyone holds
            else:
                leader = src if isinstance(msg, FROM_LEADER) else None
                self._become_follower(msg.term, leader, reason="higher_term")
        elif msg.term < self.term:
            if self.opts.mutate == "stale-reply" and isinstance(msg, REPLIES):
                # Mutation: a reply to a request of an older term is handled as if it were
                # of this one. A vote granted in term t then elects us in term t+1 (where
                # the voter may have voted for someone else), an acknowledgement for an
                # old log position counts towards a commit it does not prove.
                self._step_role(src, msg)
                return
            self._answer_stale(src, msg)
            return
        if isinstance(msg, RequestVote):
            self._handle_vote(src, msg)
        else:
            self._step_role(src, msg)

    def _answer_stale(self, src: str, msg: Any) -> None:
        self._drop("stale_term")
        if isinstance(msg, FROM_LEADER) and (self.opts.check_quorum or self.opts.pre_vote):
            # A leader of an older term is talking to us. With check-quorum or pre-vote it
            # may never see our term through a vote request (we do not send those to a
            # live leader), so answer with our term and it steps down (as etcd does).
            self.out.send(src, AppendResponse(self.term, False, 0))
        elif isinstance(msg, RequestVote) and msg.pre_vote:
            self.out.send(src, VoteResponse(self.term, False, pre_vote=True))

    def _in_lease(self) -> bool:
        if not self.opts.check_quorum:
            return False
        if self.role == LEADER:
            return True  # check-quorum deposes us if we are not really leading
        return self.now < self.leader_contact + self.opts.election_timeout

    def _handle_vote(self, src: str, m: RequestVote) -> None:
        # Section 5.2: one vote per term, first come first served; a pre-vote for a later
        # term is only a question. Section 5.4.1: never for a log less up to date.
        if self.repairing and not self._repairing_may_vote(m):
            self._drop("vote_while_repairing")
            self.out.send(src, VoteResponse(self.term, False, m.pre_vote))
            return
        can_vote = (
            self.vote == src
            or (self.vote is None and self.leader is None)
            or (m.pre_vote and m.term > self.term)
        )
        # Mutation "no-up-to-date-check": any candidate gets the vote, and one missing
        # committed entries is elected and overwrites them (the Leader Completeness proof).
        up_to_date = self.opts.mutate == "no-up-to-date-check" or self.log.is_up_to_date(
            m.last_index, m.last_term
        )
        if can_vote and up_to_date:
            self.out.send(src, VoteResponse(m.term, True, m.pre_vote))
            if not m.pre_vote:
                self.vote = src
                self._reset_election_timer()  # section 5.2: granting a vote resets the timer
                self.out.event(ev.VOTE_GRANTED, term=self.term, to=src)
        else:
            self.out.send(src, VoteResponse(self.term, False, m.pre_vote))

    def _step_follower(self, src: str, m: Any) -> None:
        if isinstance(m, FROM_LEADER):
            self._follow(src)
            if isinstance(m, AppendEntries):
                self._handle_append(src, m)
            elif isinstance(m, Heartbeat):
                self._handle_heartbeat(src, m)
            else:
                self._handle_snapshot(src, m)
            if self.repairing:
                self._check_repaired(m)
        else:
            self._drop("stale")  # answers to a candidacy or leadership we no longer hold

    def _repairing_may_vote(self, m: RequestVote) -> bool:
        if self.damaged_last is None or m.term <= self.damaged_term:
            return False
        last_term, last_index = self.damaged_last
        if m.last_term != last_term:
            return m.last_term > last_term
        return m.last_index >= last_index

    def _check_repaired(self, m: Any) -> None:
        if self.repair_target is None:
            self.repair_target = m.index if isinstance(m, InstallSnapshot) else m.commit
        if self.commit >= self.repair_target and self.log.term_at(self.commit) == self.term:
            self.repairing = False
            self.out.event(ev.WAL_REPAIRED, term=self.term, index=self.commit)

    def _step_candidate(self, src: str, m: Any) -> None:
        if isinstance(m, FROM_LEADER):
            # Section 5.2: a leader of our term exists; it won, we follow.
            self._become_follower(m.term, src)
            self._step_follower(src, m)
        elif isinstance(m, VoteResponse) and m.pre_vote == (self.role == PRE_CANDIDATE):
            self._poll(src, m.granted)
        else:
            self._drop("stale")

    def _step_leader(self, src: str, m: Any) -> None:
        pr = self.progress[src]
        if isinstance(m, AppendResponse):
            pr.recent_active = True
            self._handle_append_response(src, pr, m)
        elif isinstance(m, HeartbeatResponse):
            pr.recent_active = True
            self._handle_heartbeat_response(src, pr, m)
        elif isinstance(m, FROM_LEADER):
            self._drop("second_leader")  # impossible by election safety: never obey it
        else:
            self._drop("stale")

    # -- ticks --------------------------------------------------------------------------

    def _tick_election(self) -> None:
        if self.now >= self.election_deadline:
            if self.repairing:
                self._reset_election_timer()  # wait for a leader to repair us
                return
            self._campaign()

    def _tick_leader(self) -> None:
        now = self.now
        if self.opts.check_quorum and now >= self.check_quorum_deadline:
            # Thesis 6.2: a leader that has not heard from a majority for an election timeout
            # steps down, so clients of a cut-off leader learn it instead of waiting.
            self.check_quorum_deadline = now + self.opts.election_timeout
            active = 1 + sum(pr.recent_active for pr in self.progress.values())
            for pr in self.progress.values():
                pr.recent_active = False
            if active < self.quorum:
                self._become_follower(self.term, None, reason="check_quorum")
                return
        if now >= self.heartbeat_deadline:
            self.heartbeat_deadline = now + self.opts.heartbeat_interval
            self._bcast_heartbeat()
        for peer, pr in self.progress.items():
            if pr.state == SNAPSHOT and now >= pr.snapshot_sent_at + self.opts.election_timeout:
                pr.become_probe()  # the snapshot (or its answer) was lost: try again
                self._send_append(peer)
        if self.lease_expiry is not None and now >= self.lease_expiry:
            self.lease_expiry = None
            self.out.event(ev.LEASE, term=self.term, expiry=None)

    def _next_deadline(self) -> float | None:
        if self.role == LEADER:
            deadline = self.heartbeat_deadline
            if self.opts.check_quorum:
                deadline = min(deadline, self.check_quorum_deadline)
            if self.lease_expiry is not None:
                deadline = min(deadline, self.lease_expiry)
            return deadline
        return self.election_deadline

    def _reset_election_timer(self) -> None:
        # Section 5.2: randomized in [T, 2T) so that split votes are rare and resolve.
        timeout = self.opts.election_timeout * (1.0 + self.rng.random())
        self.election_deadline = self.now + timeout

    # -- roles --------------------------------------------------------------------------

    def _campaign(self) -> None:
        if self.opts.pre_vote:
            self._become_pre_candidate()
        else:
            self._become_candidate()

    def _become_follower(self, term: int, leader: str | None, reason: str = "higher_term") -> None:
        if term < self.term:
            raise RuntimeError(f"term cannot go back from {self.term} to {term}")
        was = self.role
        if was == LEADER:
            self._stop_leading(reason, leader)
        if term > self.term:
            self.term = term
            self.vote = None
        changed = was != FOLLOWER or self.leader != leader
        self.role = FOLLOWER
        self.leader = leader
        self._step_role = self._step_follower
        self._tick_role = self._tick_election
        self._reset_election_timer()
        if leader is not None:
            self.leader_contact = self.now
        if changed:
            self.out.event(ev.BECAME_FOLLOWER, term=self.term, leader=leader)

    def _follow(self, leader: str) -> None:
        """A message from the leader of our term: it is alive, do not campaign."""
        self.leader_contact = self.now
        self._reset_election_timer()
        if self.leader != leader:
            self.leader = leader
            self.out.event(ev.BECAME_FOLLOWER, term=self.term, leader=leader)

    def _become_pre_candidate(self) -> None:
        if self.role == LEADER:
            raise RuntimeError("invalid transition: leader -> pre_candidate")
        # Thesis 9.6: ask first, at term + 1, without raising our term. A node cut off
        # from the majority keeps failing here, so it does not come back with a term that
        # would depose a healthy leader.
        self.role = PRE_CANDIDATE
        self.leader = None
        self.votes = {}
        self._step_role = self._step_candidate
        self._tick_role = self._tick_election
        self._reset_election_timer()
        self.out.event(ev.BECAME_CANDIDATE, term=self.term, pre_vote=True)
        self._poll(self.me, True)
        if self.role == PRE_CANDIDATE:
            ask = RequestVote(self.term + 1, self.log.last_index, self.log.last_term, True)
            for peer in self.peers:
                self.out.send(peer, ask)

    def _become_candidate(self) -> None:
        if self.role == LEADER:
            raise RuntimeError("invalid transition: leader -> candidate")
        # Section 5.2: new term, vote for ourselves, ask everyone else.
        self.term += 1
        self.vote = self.me
        self.role = CANDIDATE
        self.leader = None
        self.votes = {}
        self.elections += 1
        self._step_role = self._step_candidate
        self._tick_role = self._tick_election
        self._reset_election_timer()
        self.out.event(ev.BECAME_CANDIDATE, term=self.term)
        self._poll(self.me, True)
        if self.role == CANDIDATE:
            ask = RequestVote(self.term, self.log.last_index, self.log.last_term)
            for peer in self.peers:
                self.out.send(peer, ask)

    def _poll(self, voter: str, granted: bool) -> None:
        self.votes.setdefault(voter, granted)  # a voter's first answer counts
        yes = sum(self.votes.values())
        no = len(self.votes) - yes
        if yes >= self.quorum:
            if self.role == PRE_CANDIDATE:
                self._become_candidate()
            else:
                self._become_leader()
        elif no > len(self.config.replicas) - self.quorum:
            self._become_follower(self.term, None)  # lost: wait for a leader or time out

    def _become_leader(self) -> None:
        if self.role != CANDIDATE:
            raise RuntimeError(f"invalid transition: {self.role} -> leader")
        self.role = LEADER
        self.leader = self.me
        self._step_role = self._step_leader
        self._tick_role = self._tick_leader
        last = self.log.last_index
        self.progress = {
            p: Progress(next=last + 1, max_inflight=self.opts.max_inflight) for p in self.peers
        }
        self.proposals = {}
        self.reads.reset()
        self.election_deadline = math.inf
        self.heartbeat_deadline = self.now + self.opts.heartbeat_interval
        self.check_quorum_deadline = self.now + self.opts.election_timeout
        self.out.event(ev.BECAME_LEADER, term=self.term, how="elected")
        self.reads.new_round(self.now)  # the first AppendEntries carry round 1
        # Section 8: an empty entry of our term. Committing it commits everything before it
        # (5.4.2) and tells us our commit index is current, which reads wait for.
        self._append(None)

    def _stop_leading(self, reason: str, leader: str | None) -> None:
        self.out.event(ev.STEPPED_DOWN, term=self.term, reason=reason)
        if self.lease_expiry is not None:
            self.lease_expiry = None
            self.out.event(ev.LEASE, term=self.term, expiry=None)
        self._abandon_reads(leader)
        # Writes in flight are not answered: they may still commit under the next leader,
        # so "not_leader" would be a lie; the client times out and retries (exactly once
        # thanks to the session table).
        self.proposals = {}
        self.progress = {}
        self.heartbeat_deadline = math.inf
        self.check_quorum_deadline = math.inf

    # -- status -------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        s: dict[str, Any] = {
            "role": self.role,
            "term": self.term,
            "leader": self.leader,
            "vote": self.vote,
            "commit_index": self.commit,
            "applied_index": self.applied,
            "log": self.log.last_index,
            "last_index": self.log.last_index,
            "last_term": self.log.last_term,
            "log_entries": len(self.log.entries),
            "snapshot_index": self.log.snapshot_index,
            "lease_expiry": self.lease_expiry,
            "fencing_token": self.term if self.role == LEADER else None,
            "votes": dict(self.votes),
            "elections": self.elections,
            "pending_reads": len(self.reads),
            "dropped": sum(self.drops.values()),
            "drops": dict(self.drops),
            "repairing": self.repairing,
        }
        if self.role == LEADER:
            s["progress"] = {p: pr.describe() for p, pr in self.progress.items()}
        return s


def _high_water(tail: tuple[Any, ...]) -> tuple[int, tuple[int, int] | None]:
    """From the records a damaged WAL held after its corrupt one: the highest term this
    node may have voted in, and the (term, index) its log had reached, None when the
    records do not say (no entries among them)."""
    term = 0
    last: tuple[int, int] | None = None
    for record in tail:
        if isinstance(record, HardState):
            term = max(term, record.term)
        elif isinstance(record, LogEntries) and record.entries:
            e = record.entries[-1]
            last = (e.term, e.index)  # appends and truncations in order: the newest wins
            term = max(term, e.term)
        elif isinstance(record, SnapshotRecord):
            last = (record.term, record.index) if last is None else max(last, (record.term,
                                                                            record.index))
            term = max(term, record.term)
    return term, last
