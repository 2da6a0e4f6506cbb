"""EPaxosProtocol: inputs, command leading (PreAccept, Accept, Commit), timers, execution.

Leaderless: every replica takes client requests and is the command leader of the
instances it opens in its own row of the instance space. A command commits on the fast
path when a fast quorum (F + floor((F+1)/2) replicas, leader included, N = 2F+1) pre-accepts
it with the leader's own attributes, otherwise after a Paxos Accept round at a majority.
Recovery of instances whose leader went quiet (explicit Prepare, TryPreAccept) lives in
recovery.py, catching up on missed instances in catchup.py and checkpoints in
checkpoint.py: mixins of this class, each declaring the state and the core methods it
uses (this class owns both), none importing this module. Execution order is the Executor
(execution.py), the phase an instance is driven in a `Lead` (lead.py).

Every input opens one batch (`BatchingProtocol`: `self.now`, `self.out`); `_seal` ends it
with the next deadline.

Timers: one per instance at most, kept in a heap and validated lazily when they fire. A
command leader re-sends its phase every `resend_interval`; any replica that knows of an
instance left undecided for `recovery_timeout` (randomized, so recoveries rarely duel), or
whose execution waits on one, recovers it. No input ever scans the whole history.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from typing import Any, ClassVar

import msgspec

from protocols.base import (
    BrokerWrite,
    ClientRequest,
    Command,
    Committed,
    NodeConfig,
    Ready,
    SnapshotImage,
    reply,
    request_problem,
)
from protocols.base.batching import BatchingProtocol
from protocols.base.effects import AppliedOrders
from protocols.display import Column, Role
from protocols.epaxos.catchup import CatchUp
from protocols.epaxos.checkpoint import Checkpoints
from protocols.epaxos.execution import Executor
from protocols.epaxos.instances import Conflicts, Instance, InstanceId
from protocols.epaxos.lead import Lead, pairwise_max
from protocols.epaxos.messages import (
    ACCEPTED,
    COMMITTED,
    MESSAGES,
    NONE,
    PREACCEPTED,
    RECORDS,
    Accept,
    AcceptReply,
    Checkpoint,
    Cmds,
    Commit,
    Deps,
    InstanceState,
    PreAccept,
    PreAcceptReply,
    Prepare,
    PrepareReply,
    Reservation,
    Sync,
    TryPreAccept,
    TryPreAcceptReply,
    well_formed,
)
from protocols.epaxos.mutations import MUTATIONS
from protocols.epaxos.options import Options
from protocols.epaxos.recovery import RECOVERY_ACCEPT_EVENT, RECOVERY_EVENT, Recovery

MAX_BACKOFF_DOUBLINGS = 4
RESERVE_BLOCK = 16  # own instance numbers reserved by one durable record
RECOVERED_EVENT = "epaxos.recovered"  # data: instance, noop


class EPaxosProtocol(Recovery, CatchUp, Checkpoints, BatchingProtocol):
    name: ClassVar[str] = "epaxos"
    description: ClassVar[str] = (
        "Egalitarian Paxos: leaderless, fast path at a fast quorum, slow path by Accept, "
        "dependency-graph execution, explicit-Prepare recovery with TryPreAccept"
    )
    Options = Options
    mutations = MUTATIONS
    targeted = "protocols.epaxos.targeted:SCHEDULES"
    messages = MESSAGES
    records = RECORDS
    default_nodes: ClassVar[int] = 3
    ordering: ClassVar[str] = "per_key"
    replies_carry_term: ClassVar[bool] = False  # no leader, no term: ballots are per instance
    # The runtime's session table answers a request id applied twice from the table: a
    # client retry may open a second instance for the same request.
    exactly_once: ClassVar[bool] = True
    reports_durable_floor: ClassVar[bool] = True  # every checkpoint (execution positions)
    # A 30 s chaos run executes a few thousand instances: checkpoint (and compact, and
    # restart from checkpoints) under faults.
    short_run_options: ClassVar[dict[str, Any]] = {"checkpoint_interval": 200}
    # Explicit-Prepare recovery, told by events whose data names the `instance` as
    # [command leader's index, number]: one starts, its Accept goes out, the recoverer
    # decides. Explore's recovery-race nemesis (labctl/recovery_race.py) times its link
    # cuts by them; a protocol without this declaration is not offered it.
    recovery_events: ClassVar[dict[str, str]] = {
        "start": RECOVERY_EVENT, "accept": RECOVERY_ACCEPT_EVENT, "decided": RECOVERED_EVENT,
    }
    # Leaderless: no role leads, so a fault's "leader" is the first running replica.
    roles = (Role("replica", glyph="·", label="running (every replica leads its own commands)"),)
    term_word: ClassVar[str] = "ballot"
    columns = (
        Column("committed", priority=3, right=True),
        Column("executed", priority=4, right=True),
        Column("fast_path_ratio", "fast", format="percent", priority=5, right=True),
        Column("recovering", format="count", priority=6, right=True),
        Column("ballot", priority=7, right=True),
    )

    def __init__(self, config: NodeConfig) -> None:
        super().__init__(config)
        self.check_config(config)
        self.opts: Options = config.options
        self.me = config.node_id
        self.ids = config.replicas
        self.n = len(self.ids)
        self.idx = self.ids.index(self.me)
        self.index_of = {r: i for i, r in enumerate(self.ids)}
        self.peers = config.peers
        self.rng = config.rng
        # F failures tolerated; quorums counted in peers (the sender counts itself).
        self.f = (self.n - 1) // 2
        majority = self.n // 2 + 1
        self.fast_size = max(self.f + (self.f + 1) // 2, majority)
        if self.opts.mutate == "small-fast-quorum":
            # Mutation: the fast quorum one short. Two fast quorums then need not meet
            # in a replica that saw both interfering commands, and each commits without
            # depending on the other.
            self.fast_size -= 1
        self.slow_peers = majority - 1
        self.fast_peers = self.fast_size - 1

        self.instances: dict[InstanceId, Instance] = {}
        self.conflicts = Conflicts(self.n)
        self.executor = Executor(self.n, self.instances)
        self.next_inum = 1
        self.max_ballot = 0
        self.leading: dict[InstanceId, Lead] = {}
        self.recovery_tries: dict[InstanceId, int] = {}  # attempts at undecided instances
        self.reserved_upto = 0  # our instance numbers a PreAccept may have left for
        self.recovering: set[InstanceId] = set()  # recoveries this replica drives now
        self.inflight: set[InstanceId] = set()  # own instances this process still drives
        self.pending: list[tuple[str, Command]] = []  # requests waiting for a batch
        self.proposed_here: set[InstanceId] = set()  # answer clients when they execute
        self.applied_orders = AppliedOrders()  # a retried order's side effect leaves once
        self.waiting: dict[InstanceId, set[InstanceId]] = {}  # uncommitted -> blocked ones
        self.timers: list[tuple[float, int, InstanceId]] = []
        self.timer_at: dict[InstanceId, float] = {}
        self._timer_seq = 0
        self.known_max = [0] * self.n  # highest instance number seen per replica
        self.committed_upto = [0] * self.n  # per replica, every instance up to it committed
        self.sync_at = math.inf
        self._sync_turn = 0
        self._init_checkpoints()

        self.committed_count = 0
        self.executed_count = 0
        self.applied = 0  # execution position: Committed.index
        self.fast = 0
        self.slow = 0
        self.recovered = 0
        self.drops: Counter[str] = Counter()

    # -- inputs -----------------------------------------------------------------------------

    def start(self, now: float, recovered: list[msgspec.Struct]) -> Ready:
        self._begin(now, starting=True)
        for record in recovered:
            if isinstance(record, Checkpoint):
                self._restore_checkpoint(record)
                continue
            if isinstance(record, Reservation):
                self.reserved_upto = max(self.reserved_upto, record.upto)
                continue
            if not isinstance(record, InstanceState):
                raise TypeError(f"not an epaxos record: {type(record).__name__}")
            iid = (record.replica, record.inum)
            if self._is_compacted(*iid):
                continue  # executed everywhere and in the checkpoint
            held = self.instances.get(iid)
            if held is not None and held.status == COMMITTED:
                continue  # a commit is final (its record may precede a late vote's)
            self.instances[iid] = Instance.from_record(record)
        for iid in sorted(self.instances):
            inst = self.instances[iid]
            # Our own instance, voted for but not known committed: we may have decided it
            # on the fast path and lost that record (written lazily) in the crash.
            inst.forgetful = inst.replica == self.idx and inst.status != COMMITTED and self.n > 1
            self.known_max[iid[0]] = max(self.known_max[iid[0]], iid[1])
            self.max_ballot = max(self.max_ballot, inst.ballot)
            if inst.replica == self.idx:
                self.next_inum = max(self.next_inum, inst.inum + 1)
            if inst.cmds is not None:
                self.conflicts.add(inst)
            if inst.status == COMMITTED:
                self.committed_count += 1
                inst.executed = self._in_checkpoint(*iid)  # the image holds its effects
            else:
                self._schedule(iid, self._recovery_time())
        self._recover_holes()  # and computes the committed prefix
        # Numbers we reserved but find no record of: a PreAccept for one may have left
        # before the crash. Never reuse them; recover each now (a no-op if nobody saw it).
        for inum in range(self.next_inum, self.reserved_upto + 1):
            self._instance((self.idx, inum))
            self._schedule((self.idx, inum), now)
        self.next_inum = max(self.next_inum, self.reserved_upto + 1)
        # The state machine starts empty at every start (or from the checkpoint's image):
        # execute the committed history again beyond it, in a valid order (indexes go on
        # from the checkpoint's, 1, 2, 3... without one).
        for iid in sorted(self.instances):
            inst = self.instances[iid]
            if inst.status == COMMITTED:
                self._execute_from(inst)
        # Ask everyone for what was committed while we were down.
        for p in self.peers:
            self.out.send(p, Sync(self._sync_point(), tuple(self.checkpoint_floor)))
        self.sync_at = now + self.opts.sync_interval
        return self._finish()

    def on_message(self, now: float, src: str, msg: msgspec.Struct) -> Ready:
        self._begin(now)
        if src not in self.index_of or src == self.me:
            self._drop("unknown_node")
        elif not isinstance(msg, MESSAGES):
            self._drop("unknown_message")
        elif not well_formed(msg, self.n):
            self._drop("malformed")
        elif getattr(msg, "inum", 0) and self._is_compacted(msg.replica, msg.inum):  # type: ignore[attr-defined]
            self._drop("compacted")  # a stale duplicate: every replica executed it
        else:
            self.max_ballot = max(self.max_ballot, getattr(msg, "ballot", 0))
            self._HANDLERS[type(msg)](self, src, msg)
        return self._finish()

    def on_client(self, now: float, client: str, request: ClientRequest) -> Ready:
        if not isinstance(request, ClientRequest):
            raise TypeError(f"on_client needs a ClientRequest, got {type(request).__name__}")
        self._begin(now)
        command = request.command
        problem = request_problem(request)
        if problem:
            self.out.send(client, reply(request, "fail", self.me, error=problem))
        else:
            # Every read goes through consensus: quorum and lease reads are log reads here.
            self.pending.append((client, command))
            self._flush_pending()
        return self._finish()

    def on_tick(self, now: float) -> Ready:
        self._begin(now)
        while self.timers and self.timers[0][0] <= now:
            t, _, iid = heapq.heappop(self.timers)
            if self.timer_at.get(iid) != t:
                continue  # superseded by a later schedule
            del self.timer_at[iid]
            self._check(iid)
        if now >= self.sync_at and self.peers:
            self._sync_turn = (self._sync_turn + 1) % len(self.peers)
            sync = Sync(self._sync_point(), tuple(self.checkpoint_floor))
            self.out.send(self.peers[self._sync_turn], sync)
            self.sync_at = now + self.opts.sync_interval
        return self._finish()

    def on_snapshot(self, now: float, image: SnapshotImage) -> Ready:
        self._begin(now)
        if image.index == self.applied and self.since_checkpoint > 0:
            self._checkpoint(image)
        return self._finish()

    def _seal(self, out: Ready) -> None:
        while self.timers and self.timer_at.get(self.timers[0][2]) != self.timers[0][0]:
            heapq.heappop(self.timers)  # stale entries must not ask for a past tick
        deadline = min(self.timers[0][0] if self.timers else math.inf, self.sync_at)
        if deadline < math.inf:
            out.next_deadline = max(deadline, math.nextafter(self.now, math.inf))

    def _drop(self, reason: str) -> None:
        self.drops[reason] += 1

    # -- timers -------------------------------------------------------------------------------

    def _schedule(self, iid: InstanceId, t: float, replace: bool = True) -> None:
        """One timer per instance: `replace` moves it, otherwise the earlier one stays."""
        current = self.timer_at.get(iid)
        if current is not None and not replace and current <= t:
            return
        self.timer_at[iid] = t
        self._timer_seq += 1
        heapq.heappush(self.timers, (t, self._timer_seq, iid))

    def _recovery_time(self, iid: InstanceId | None = None) -> float:
        # Randomized so that two replicas rarely start recovering one instance together,
        # and backed off per instance: each failed attempt doubles the wait (up to 16x).
        tries = self.recovery_tries.get(iid, 0) if iid is not None else 0
        backoff = 1 << min(tries, MAX_BACKOFF_DOUBLINGS)
        return self.now + self.opts.recovery_timeout * backoff * (1.0 + self.rng.random())

    def _check(self, iid: InstanceId) -> None:
        if self._is_compacted(*iid):
            return
        inst = self.instances.get(iid)
        if inst is not None and inst.status == COMMITTED:
            self.leading.pop(iid, None)
            return
        lead = self.leading.get(iid)
        if lead is not None and self.now < lead.deadline:
            self._resend(iid, lead)
            self._schedule(iid, min(self.now + self.opts.resend_interval, lead.deadline))
            return
        self._start_recovery(iid)

    def _resend(self, iid: InstanceId, lead: Lead) -> None:
        missing = [p for p in self.peers if p not in lead.replies]
        replica, inum = iid
        if lead.phase == "preaccept":
            if len(lead.replies) >= self.slow_peers:
                self._accept_phase(iid, lead, lead.cmds, lead.seq, lead.deps)
                return
            msg: msgspec.Struct = PreAccept(
                lead.ballot, replica, inum, lead.cmds, lead.sent_seq, lead.sent_deps
            )
        elif lead.phase == "accept":
            msg = Accept(lead.ballot, replica, inum, *self._attrs(lead))
        elif lead.phase == "prepare":
            msg = Prepare(lead.ballot, replica, inum)
        else:
            msg = TryPreAccept(lead.ballot, replica, inum, *self._attrs(lead))
            missing = [p for p in sorted(lead.targets) if p not in lead.replies and p != self.me]
        for p in missing:
            self.out.send(p, msg)

    @staticmethod
    def _attrs(lead: Lead) -> tuple[Cmds, int, Deps]:
        return lead.cmds, lead.seq, lead.deps

    # -- instance state changes (every one persisted before the replies that rely on it) ---

    def _instance(self, iid: InstanceId) -> Instance:
        inst = self.instances.get(iid)
        if inst is None:
            inst = self.instances[iid] = Instance(iid[0], iid[1])
            self._learn_numbers(iid[0], iid[1])
        return inst

    def _persist(self, inst: Instance, fence: bool = True) -> None:
        if fence:
            # A promise or a vote: no message of this batch may leave before it is durable.
            self.out.persist.append(inst.record())
        else:
            self.out.persist_overtakable(inst.record())

    def _vote(
        self,
        inst: Instance,
        status: int,
        ballot: int,
        cmds: Cmds,
        seq: int,
        deps: Deps,
        orig: bool,
        fence: bool = True,
    ) -> None:
        first = inst.status == NONE and inst.cmds is None
        inst.status, inst.ballot, inst.vballot, inst.orig = status, ballot, ballot, orig
        inst.cmds, inst.seq, inst.deps = cmds, seq, deps
        self.conflicts.add(inst)
        self._persist(inst, fence)
        if first and inst.replica != self.idx:
            self._schedule(inst.id, self._recovery_time(), replace=False)

    def _promise(self, inst: Instance, ballot: int) -> None:
        if ballot > inst.ballot:
            inst.ballot = ballot
            self._persist(inst)
            lead = self.leading.get(inst.id)
            if lead is not None and lead.ballot < ballot:
                self._abandon(inst.id)

    def _abandon(self, iid: InstanceId) -> None:
        """Someone with a higher ballot drives this instance now; recover it ourselves
        only if it is still undecided a recovery timeout from now."""
        self.leading.pop(iid, None)
        self.recovering.discard(iid)
        if iid in self.inflight:
            self.inflight.discard(iid)
            self._flush_pending()
        self._schedule(iid, self._recovery_time(iid))

    # -- command leader ---------------------------------------------------------------------

    def _flush_pending(self) -> None:
        while self.pending and len(self.inflight) < self.opts.max_inflight:
            batch, self.pending = self.pending[: self.opts.batch], self.pending[self.opts.batch :]
            self._propose(tuple(c for _, c in batch))

    def _propose(self, cmds: Cmds) -> None:
        while (self.idx, self.next_inum) in self.instances:
            self.next_inum += 1  # a recovery's placeholder took this number
        iid = (self.idx, self.next_inum)
        self.next_inum += 1
        if iid[1] > self.reserved_upto:
            # Durable before any PreAccept for these numbers leaves (it fences them).
            self.reserved_upto = iid[1] + RESERVE_BLOCK - 1
            self.out.persist.append(Reservation(self.reserved_upto))
        seq, deps = self.conflicts.attributes(cmds, 0, (), iid)
        inst = self._instance(iid)
        # Our own vote must be durable before we count it, though recovery never takes it
        # as evidence: we are a member of the fast quorum, and a later interfering command
        # may meet this one only in us. Written lazily (tried), a leader that crashed forgot
        # the command, and two interfering commands committed without either depending on
        # the other (simnet schedules found it).
        self._vote(inst, PREACCEPTED, 0, cmds, seq, deps, orig=True, fence=False)
        self.inflight.add(iid)
        self.proposed_here.add(iid)
        self.leading[iid] = Lead(0, "preaccept", False, cmds, seq, deps, seq, deps)
        if self.fast_peers == 0:
            self._commit(iid, cmds, seq, deps)  # a single replica is its own quorum
            return
        targets = self.peers
        if self.opts.thrifty:
            targets = self._thrifty_targets()
        msg = PreAccept(0, iid[0], iid[1], cmds, seq, deps)
        for p in targets:
            # Our own proposal in a reserved number: it may travel while our vote for it is
            # being written (as a Raft leader's entries do); we count our own vote only
            # after that write returned, which the runtime's loop guarantees.
            self.out.send_parallel(p, msg)
        self._schedule(iid, self.now + self.opts.resend_interval)

    def _thrifty_targets(self) -> tuple[str, ...]:
        # The next fast_peers replicas after us, cyclically: a fixed choice keeps their
        # conflict state aligned with ours, which is what makes replies match.
        order = self.ids[self.idx + 1 :] + self.ids[: self.idx]
        return order[: self.fast_peers]

    def _on_pre_accept(self, src: str, m: PreAccept) -> None:
        iid = (m.replica, m.inum)
        inst = self._instance(iid)
        if inst.status == COMMITTED:
            self.out.send(src, Commit(m.replica, m.inum, inst.cmds or (), inst.seq, inst.deps))
            return
        if m.ballot < inst.ballot:
            self.out.send(src, PreAcceptReply(inst.ballot, m.replica, m.inum, False))
            return
        if inst.vballot == m.ballot and inst.status >= PREACCEPTED and inst.cmds == m.cmds:
            # A resend: answer with what we voted, never vote twice in one ballot.
            if inst.status == PREACCEPTED:
                reply_ = PreAcceptReply(m.ballot, m.replica, m.inum, True, inst.seq, inst.deps)
                self.out.send(src, reply_)
            return
        seq, deps = self.conflicts.attributes(m.cmds, m.seq, m.deps, iid)
        if self.opts.mutate == "drop-deps":
            # Mutation: the reply (and the vote) omits the interfering instances this
            # replica knows of: the leader fast-commits a command that depends on nothing
            # it should, and two replicas execute the pair in different orders.
            seq, deps = m.seq, m.deps
        orig = m.ballot == 0 and seq == m.seq and deps == m.deps
        self._vote(inst, PREACCEPTED, m.ballot, m.cmds, seq, deps, orig)
        self.out.send(src, PreAcceptReply(m.ballot, m.replica, m.inum, True, seq, deps))

    def _current_reply(self, m: PreAcceptReply | AcceptReply, phase: str) -> Lead | None:
        """The phase a reply answers, if we still drive it in the reply's ballot; a refusal
        from a higher ballot makes us give the instance up."""
        iid = (m.replica, m.inum)
        lead = self.leading.get(iid)
        inst = self.instances.get(iid)
        if lead is None or lead.phase != phase or inst is None:
            return None
        if not m.ok:
            if m.ballot > lead.ballot:
                self._promise(inst, m.ballot)
                self._abandon(iid)
            return None
        if m.ballot != lead.ballot or inst.ballot != lead.ballot:
            return None
        return lead

    def _on_pre_accept_reply(self, src: str, m: PreAcceptReply) -> None:
        iid = (m.replica, m.inum)
        lead = self._current_reply(m, "preaccept")
        if lead is None or src in lead.replies:
            return
        lead.replies[src] = m
        if m.seq != lead.seq or m.deps != lead.deps:
            lead.all_equal = False
        # Slow-path attributes: the union of everything the replies saw.
        seq, deps = max(lead.seq, m.seq), pairwise_max(lead.deps, m.deps)
        if lead.fast and lead.all_equal and len(lead.replies) >= self.fast_peers:
            self.fast += 1
            self._commit(iid, lead.cmds, lead.seq, lead.deps)
            return
        lead.seq, lead.deps = seq, deps
        if not lead.all_equal or not lead.fast:
            if len(lead.replies) >= self.slow_peers:
                self._accept_phase(iid, lead, lead.cmds, lead.seq, lead.deps)

    def _accept_phase(self, iid: InstanceId, lead: Lead, cmds: Cmds, seq: int, deps: Deps) -> None:
        inst = self._instance(iid)
        lead.phase, lead.cmds, lead.seq, lead.deps = "accept", cmds, seq, deps
        lead.replies = {}
        self._vote(inst, ACCEPTED, lead.ballot, cmds, seq, deps, orig=False)
        if not lead.recovery:
            self.slow += 1
        else:
            self.out.event(RECOVERY_ACCEPT_EVENT, instance=list(iid), ballot=lead.ballot)
        if self.slow_peers == 0:
            self._commit(iid, cmds, seq, deps)
            return
        msg = Accept(lead.ballot, iid[0], iid[1], cmds, seq, deps)
        for p in self.peers:
            self.out.send(p, msg)

    def _on_accept(self, src: str, m: Accept) -> None:
        iid = (m.replica, m.inum)
        inst = self._instance(iid)
        if inst.status == COMMITTED:
            self.out.send(src, Commit(m.replica, m.inum, inst.cmds or (), inst.seq, inst.deps))
            return
        if m.ballot < inst.ballot:
            self.out.send(src, AcceptReply(inst.ballot, m.replica, m.inum, False))
            return
        if not (inst.status == ACCEPTED and inst.vballot == m.ballot):
            self._vote(inst, ACCEPTED, m.ballot, m.cmds, m.seq, m.deps, orig=False)
        self.out.send(src, AcceptReply(m.ballot, m.replica, m.inum, True))

    def _on_accept_reply(self, src: str, m: AcceptReply) -> None:
        iid = (m.replica, m.inum)
        lead = self._current_reply(m, "accept")
        if lead is None:
            return
        lead.replies[src] = m
        if len(lead.replies) >= self.slow_peers:
            self._commit(iid, lead.cmds, lead.seq, lead.deps)

    # -- commit and execution ----------------------------------------------------------------

    def _commit(self, iid: InstanceId, cmds: Cmds, seq: int, deps: Deps) -> None:
        """Decided: record it, tell everyone, execute what it unblocks."""
        lead = self.leading.pop(iid, None)
        self.recovery_tries.pop(iid, None)
        self.recovering.discard(iid)
        if lead is not None and lead.recovery:
            self.recovered += 1
            self.out.event(RECOVERED_EVENT, instance=list(iid), noop=not cmds)
        msg = Commit(iid[0], iid[1], cmds, seq, deps)
        for p in self.peers:
            self.out.send_after(p, msg)  # our client's answer does not wait for these
        self._learn_commit(iid, cmds, seq, deps)
        if iid in self.inflight:
            self.inflight.discard(iid)
            self._flush_pending()

    def _on_commit(self, src: str, m: Commit) -> None:
        iid = (m.replica, m.inum)
        inst = self.instances.get(iid)
        if inst is not None and inst.status == COMMITTED:
            return
        lead = self.leading.pop(iid, None)
        if lead is not None and lead.recovery:
            self.out.event(RECOVERED_EVENT, instance=list(iid), noop=not m.cmds, by=src)
        self._learn_commit(iid, m.cmds, m.seq, m.deps)
        if iid in self.inflight:
            self.inflight.discard(iid)
            self._flush_pending()

    def _learn_commit(self, iid: InstanceId, cmds: Cmds, seq: int, deps: Deps) -> None:
        inst = self._instance(iid)
        if inst.status == COMMITTED:
            return
        inst.status, inst.cmds, inst.seq, inst.deps = COMMITTED, cmds, seq, deps
        inst.forgetful = False
        self.conflicts.add(inst)
        # The decision is durable already (a fast quorum pre-accepted these attributes, or
        # a majority accepted them): our record of it is written after the answers, with
        # no fsync of its own. A crash may lose it; recovery then finds the same decision
        # (a command leader that lost its own is `forgetful`, see recovery.py rule 3).
        self.out.persist_after.append(inst.record())
        self.committed_count += 1
        if iid[1] == self.committed_upto[iid[0]] + 1:
            self._advance_committed(iid[0])
        self.timer_at.pop(iid, None)
        self._execute_from(inst)
        for blocked in sorted(self.waiting.pop(iid, ())):
            waiter = self.instances.get(blocked)
            if waiter is not None:
                self._execute_from(waiter)

    def _execute_from(self, inst: Instance) -> None:
        blocker = self.executor.run(inst, self._execute)
        if blocker is not None:
            self.waiting.setdefault(blocker, set()).add(inst.id)
            # Never wait forever: an instance that stays undecided gets recovered.
            self._schedule(blocker, self._recovery_time(), replace=False)

    def _execute(self, inst: Instance) -> None:
        self.executed_count += 1
        self._executed_one()
        answer = inst.id in self.proposed_here
        for c in inst.cmds or ():
            self.applied += 1
            first = c.op == "order" and self.applied_orders.first(c.request_id)
            if answer and first:
                # EPaxos has no leader term to fence with: the token is always 0.
                write = BrokerWrite(0, self.me, self.applied, c.request_id, c.order)
                self.out.send("broker", write)
            self.out.committed.append(Committed(self.applied, 0, c, reply=answer))
        self.proposed_here.discard(inst.id)

    # -- status --------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        decided = self.fast + self.slow
        return {
            "role": "replica",
            "term": self.max_ballot // self.n,
            "leader": None,
            "commit_index": self.committed_count,
            "applied_index": self.applied,
            "log": len(self.instances),
            "lease_expiry": None,
            "committed": self.committed_count,
            "executed": self.executed_count,
            "fast_path": self.fast,
            "slow_path": self.slow,
            "fast_path_ratio": self.fast / decided if decided else None,
            "recovering": len(self.recovering),
            "recovered": self.recovered,
            "ballot": self.max_ballot,
            "inflight": len(self.inflight),
            "pending": len(self.pending),
            "waiting": len(self.waiting),
            "checkpoints": self.checkpoints,
            "compacted": sum(self.compacted),
            "dropped": sum(self.drops.values()),
            "drops": dict(self.drops),
        }

    _HANDLERS: ClassVar[dict[type, Any]] = {}


EPaxosProtocol._HANDLERS = {
    PreAccept: EPaxosProtocol._on_pre_accept,
    PreAcceptReply: EPaxosProtocol._on_pre_accept_reply,
    Accept: EPaxosProtocol._on_accept,
    AcceptReply: EPaxosProtocol._on_accept_reply,
    Commit: EPaxosProtocol._on_commit,
    Prepare: Recovery._on_prepare,
    PrepareReply: Recovery._on_prepare_reply,
    TryPreAccept: Recovery._on_try_pre_accept,
    TryPreAcceptReply: Recovery._on_try_pre_accept_reply,
    Sync: CatchUp._on_sync,
}
