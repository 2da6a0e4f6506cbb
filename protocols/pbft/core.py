"""PbftProtocol: inputs, the normal case (pre-prepare, prepare, commit), execution.

Castro and Liskov, "Practical Byzantine Fault Tolerance" (OSDI 1999) and "PBFT and
proactive recovery" (TOCS 2002), sections 4.1-4.5, with signatures standing in for MACs.
n = 3f+1 replicas; the primary of view v is replicas[v mod n].

Normal case: a client sends its request to every replica. The primary assigns the next
sequence number inside the watermark window and sends PRE-PREPARE; each backup that
accepts it (right view, in the window, no other pre-prepare for that view and number)
sends PREPARE to all. A replica with the pre-prepare and 2f matching prepares from
distinct backups has *prepared* the request and sends COMMIT; with 2f+1 matching commits
it has *committed* it (committed-local), and it executes requests strictly in sequence
order (the null request executes nothing), several numbers in flight at once (pipelining)
within the window. Under load a sequence number orders a batch of requests (paper 5.1.4):
the primary keeps `pipeline` numbers in flight and gives everything that arrived meanwhile
the next one, up to `batch` requests, never holding a request longer than `batch_delay`.
Committed.index counts the requests executed (1, 2, 3... whatever the batches) and
Committed.term is always 0, so correct replicas' state machine images are byte for byte
identical (checkpoint.py); the view is in status() and the events.

Every replica that executes a request answers its client (Committed.reply), so the client
can wait for f+1 matching replies. A request id already executed is not given a new
number: a put or order is answered again from what it must have returned (status ok, the
sequence number it executed at, its value), and a duplicate get or cas is not answered
(the protocol does not see results; the client has the f+1 answers it got the first time
or retries under a new id). A replica that lost commits for some number fetches the
commit certificate (the pre-prepare and 2f+1 signed commits) from its peers.

Durability: before anything leaves, the view (ViewRecord), every accepted pre-prepare,
every prepared certificate and every decision are persisted; start() rebuilds from them,
restores the stable checkpoint's image first and executes the decided requests after it
again, in order.

Everything a peer sends is checked: known sender, well formed, signed by the sender it
names, which must be the transport source; certificates message by message. Bad input is
dropped and counted by reason (status()["drops"]), never raised.

Structure: this class holds the inputs, the normal case, execution and the client side.
View changes (viewchange.py) and checkpoints with state transfer (checkpoint.py) are
mixins that each set up the state they own (`_init_views`, `_init_checkpoints`) and
declare what they use of the rest; the byzantine wrapper (byzantine.py) is a separate
object that sees the replica through a small declared interface. None of them imports
this module. Every input opens one batch (`BatchingProtocol`); `_seal` ends it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

import msgspec

from protocols.base import (
    ClientReply,
    ClientRequest,
    Column,
    Command,
    Committed,
    ConfigError,
    NodeConfig,
    Ready,
    Role,
    SnapshotImage,
    reply,
    request_problem,
)
from protocols.base import events as ev
from protocols.base.batching import BatchingProtocol
from protocols.pbft.auth import Signer
from protocols.pbft.byzantine import MODES, Byzantine
from protocols.pbft.checkpoint import Checkpoints
from protocols.pbft.log import Log, Slot
from protocols.pbft.messages import (
    MESSAGES,
    RECORDS,
    Checkpoint,
    CheckpointProof,
    Commit,
    CommitProof,
    Decided,
    FetchCommitted,
    FetchState,
    NewView,
    Prepare,
    PreparedCert,
    PrePrepare,
    StableCheckpoint,
    StateReply,
    ViewChange,
    ViewRecord,
    command_digest,
    requests_of,
    well_formed,
    well_formed_pre_prepare,
)
from protocols.pbft.mutations import MUTATIONS
from protocols.pbft.options import Options
from protocols.pbft.viewchange import ViewChanges

INF = float("inf")
# Messages only a replica in (or entering) their view sends.
VIEW_MESSAGES = (PrePrepare, Prepare, Commit, NewView)
MAX_EXECUTED = 20_000  # request ids remembered as executed (as the state machine's sessions)
MAX_BACKOFF = 3  # the view-change timeout doubles at most this many times (2.4 s)
FETCH_BATCH = 16  # commit certificates sent per FetchCommitted


class PbftProtocol(ViewChanges, Checkpoints, BatchingProtocol):
    name: ClassVar[str] = "pbft"
    description: ClassVar[str] = (
        "PBFT: byzantine fault tolerant state machine replication (3f+1 replicas), "
        "view changes, checkpoints, state transfer, HMAC-signed messages"
    )
    Options = Options
    mutations = MUTATIONS
    targeted = "protocols.pbft.targeted:SCHEDULES"
    messages = MESSAGES
    records = RECORDS
    default_nodes: ClassVar[int] = 4
    byzantine_tolerant: ClassVar[bool] = True
    byzantine_modes: ClassVar[tuple[str, ...]] = MODES
    leader_word: ClassVar[str] = "primary"
    term_word: ClassVar[str] = "view"
    replies_carry_term: ClassVar[bool] = False  # the view is in status and events
    # The state machine's session table answers a request id committed twice (a request
    # re-proposed by a new primary, or retried after a restart) without applying it again.
    exactly_once: ClassVar[bool] = True
    reports_durable_floor: ClassVar[bool] = True  # every stable checkpoint, once compacted
    test_sizes: ClassVar[tuple[int, ...]] = (4, 7)
    roles = (
        Role("primary", leads=True, glyph="▆", colour="#1d4e89"),
        Role("backup", glyph="·", colour="#a9c6de"),
        Role("view_changing", candidate=True, glyph="░", colour="#f77f00", label="view change"),
    )
    columns = (
        Column("role", format="role", priority=2),
        Column("view", priority=3, right=True),
        Column("primary", priority=4),
        # The next sequence number is the primary's to assign; a backup's means nothing.
        Column("seq", priority=7, right=True, leader_only=True),
        Column("commit_index", "commit", priority=5, right=True),
        Column("applied_index", "applied", priority=8, right=True, dashboard_only=True),
        Column("checkpoint", "ckpt", priority=6, right=True),
        Column("low_watermark", "window", format="range", key2="high_watermark", priority=9,
               right=True, dashboard_only=True),
        Column("view_changes", "vc", format="count", priority=8, right=True,
               dashboard_only=True),
        Column("byzantine", format="flag", absent="honest", priority=3),
    )

    @classmethod
    def size_warning(cls, replicas: int) -> str | None:
        f = (replicas - 1) // 3
        if replicas == 3 * f + 1 and f > 0:
            return None
        best = 3 * f + 1
        if f == 0:
            return (f"pbft with {replicas} replicas tolerates no byzantine replica (f = 0): "
                    f"n = 3f+1, so 4 tolerate one liar, 7 two")  # fmt: skip
        extra = replicas - best
        return (f"pbft with {replicas} replicas tolerates f = {f} byzantine replica(s), as "
                f"{best} do (n = 3f+1); the other {extra} add messages, not tolerance")  # fmt: skip

    def __init__(self, config: NodeConfig) -> None:
        super().__init__(config)
        self.check_config(config)
        self.opts: Options = config.options
        self.me = config.node_id
        self.replicas = config.replicas
        self.replica_set = frozenset(config.replicas)
        self.peers = config.peers
        self.n = len(self.replicas)
        self.f = (self.n - 1) // 3
        # 2f+1 when n = 3f+1; for other sizes the smallest quorum whose pairs still share
        # f+1 replicas (at least one honest): ceil((n+f+1)/2). With n = 3 (f = 0) that is a
        # majority, so a partition cannot make two primaries commit different requests.
        self.quorum = (self.n + self.f + 2) // 2
        if self.opts.mutate == "floor-quorum":
            # Mutation: the quorum one short (2f instead of 2f+1 at n = 3f+1). Two quorums
            # then share only f replicas, all of which may lie: one equivocating primary
            # makes two honest backups commit different requests at one number.
            self.quorum -= 1
        self.signer = Signer(self.opts.key, self.me, self.replicas)
        # The messages inside a certificate (a commit proof, a view change's prepared
        # certificates, a checkpoint proof, a new view's view changes) are checked with
        # this. Mutation "skip-verify" believes them unchecked: a liar's certificate of
        # messages it made up "from" honest replicas is taken as proof.
        self.verify_cert = (
            (lambda msg: True) if self.opts.mutate == "skip-verify" else self.signer.verify
        )
        self.byz = Byzantine(self)
        self._init_views()  # view, active, the view-change timer... (viewchange.py)
        self._init_checkpoints()  # the stable checkpoint, state transfer (checkpoint.py)

        # The log.
        self.log = Log()
        self.next_seq = 1  # primary: the next number it assigns
        self.last_exec = 0
        self.exec_index = 0  # requests executed: Committed.index
        self.commit_index = 0  # highest decided number
        self.awaiting_snapshot: int | None = None  # execution paused for this checkpoint
        self.replay_upto = 0  # decided numbers recovered at start: executed without replies
        self.exec_at_periodic = 0  # last_exec at the previous periodic round
        # Clients.
        self.pending: dict[str, tuple[Command, float]] = {}  # received, not executed
        self.queue: dict[str, Command] = {}  # primary: received, no number yet
        self.assigned: dict[str, int] = {}  # request id -> number, in this view
        self.executed: dict[str, tuple[int, Command]] = {}  # request id -> (number, request)
        # Deadlines, node clock (the view-change and fetch timers: the mixins').
        self.status_deadline = INF
        self.batch_deadline = INF  # primary: the oldest queued request's wait ends
        self._assigning = False
        # Telemetry.
        self.drops: Counter[str] = Counter()
        self.prepared_count = 0
        self.committed_count = 0
        self.duplicates = 0

    # -- helpers ----------------------------------------------------------------------------

    def primary(self, view: int) -> str:
        return self.replicas[view % self.n]

    def _timeout(self) -> float:
        return self.opts.view_change_timeout * (2 ** min(self.backoff, MAX_BACKOFF))

    def _in_window(self, seq: int) -> bool:
        return self.stable_seq < seq <= self.stable_seq + self.opts.window

    def _broadcast(self, msg: msgspec.Struct) -> None:
        for p in self.peers:
            self.out.send(p, msg)

    def _drop(self, reason: str) -> None:
        self.drops[reason] += 1

    # -- inputs -----------------------------------------------------------------------------

    def start(self, now: float, recovered: list[msgspec.Struct]) -> Ready:
        self._begin(now, starting=True)
        for record in recovered:
            self._recover(record)
        if self.stable_image is not None:
            # The runtime's state machine starts empty: the checkpoint is its start.
            image = self.stable_image
            self.out.restore = SnapshotImage(self.stable_index, 0, image)
            self.out.durable_floor(self.stable_index, self.config.replicas)
            self.own_checkpoints[self.stable_seq] = (self.stable_digest, image, self.stable_index)
        self.last_exec = self.commit_index = self.stable_seq
        self.exec_index = self.stable_index
        self.replay_upto = max(
            (q for q, s in self.log.slots.items() if s.decided is not None), default=0
        )
        self.commit_index = max(self.commit_index, self.replay_upto)
        self.status_deadline = now + self.opts.view_change_timeout / 2
        mine = [
            q
            for q, s in self.log.slots.items()
            if s.pre_prepare is not None and s.pre_prepare.view == self.view
        ]
        self.next_seq = max([self.stable_seq, *mine]) + 1
        if not self.active:
            self.own_vc = self._make_view_change(self.view)
            self.vc_by_sender[self.me] = self.own_vc
            self._broadcast(self.own_vc)
            # As in _start_view_change: do not wait forever for a view nobody else joins.
            self.vc_deadline = now + 2 * self._timeout()
        elif self.primary(self.view) == self.me:
            self.out.event(ev.BECAME_LEADER, term=self.view, how="restart")
        self._execute()
        return self._finish()

    def on_message(self, now: float, src: str, msg: msgspec.Struct) -> Ready:
        self._begin(now)
        if src not in self.replica_set or src == self.me:
            self._drop("unknown_node")
        elif not isinstance(msg, MESSAGES):
            self._drop("unknown_message")
        elif not well_formed(msg):
            self._drop("malformed")
        elif msg.sender != src:  # type: ignore[attr-defined]
            self._drop("wrong_sender")
        elif not self.signer.verify(msg):
            self._drop("bad_signature")
        else:
            if isinstance(msg, VIEW_MESSAGES) and msg.view > self.seen_views.get(src, 0):
                self.seen_views[src] = msg.view
            if self.byz.mode is not None:
                self.byz.incoming(src, msg, self.out)
            self._dispatch(src, msg)
        return self._finish()

    def on_client(self, now: float, client: str, request: ClientRequest) -> Ready:
        if not isinstance(request, ClientRequest):
            raise TypeError(f"on_client needs a ClientRequest, got {type(request).__name__}")
        self._begin(now)
        problem = request_problem(request)
        if problem:
            self.out.send(client, reply(request, "fail", self.me, error=problem))
        else:
            self._handle_request(request.command)
        return self._finish()

    def on_tick(self, now: float) -> Ready:
        self._begin(now)
        if now >= self.vc_deadline:
            # A request waited too long (active), or the new primary did not deliver a
            # NEW-VIEW in time (changing): try the next view.
            self.vc_deadline = INF
            self._start_view_change(self.view + 1, escalate=True)
        if now >= self.status_deadline:
            self.status_deadline = now + self.opts.view_change_timeout / 2
            self._periodic()
        if now >= self.fetch_deadline:
            self._fetch_state()
        if now >= self.batch_deadline:
            self.batch_deadline = INF
            self._assign()
        self.byz.tick(now, self.out)
        return self._finish()

    def on_snapshot(self, now: float, image: SnapshotImage) -> Ready:
        self._begin(now)
        seq = self.awaiting_snapshot
        if seq is not None:
            self.awaiting_snapshot = None
            self._take_checkpoint(seq, image.data, self.exec_index)
            self._execute()
        return self._finish()

    def set_byzantine(self, now: float, mode: str | None) -> Ready:
        if mode is not None and mode not in MODES:
            raise ConfigError(f"pbft has no byzantine mode {mode!r} (modes: {', '.join(MODES)})")
        self._begin(now)
        self.byz.set_mode(mode, self.out)
        return self._finish()

    def _seal(self, out: Ready) -> None:
        byz = self.byz
        if byz.mode is not None or byz.released:  # (an honest replica's every batch)
            byz.rewrite(self.now, out)  # a liar's batch: what it sends instead
        deadline = min(
            self.vc_deadline, self.status_deadline, self.fetch_deadline, self.batch_deadline
        )
        held = byz.deadline()
        if held is not None:
            deadline = min(deadline, held)
        out.next_deadline = deadline if deadline != INF else None

    def _dispatch(self, src: str, msg: Any) -> None:
        if isinstance(msg, PrePrepare):
            self._on_pre_prepare(msg)
        elif isinstance(msg, Prepare):
            self._on_prepare(msg)
        elif isinstance(msg, Commit):
            self._on_commit(msg)
        elif isinstance(msg, Checkpoint):
            self._on_checkpoint(src, msg)
        elif isinstance(msg, ViewChange):
            self._on_view_change(src, msg)
        elif isinstance(msg, NewView):
            self._on_new_view(src, msg)
        elif isinstance(msg, CheckpointProof):
            self._on_checkpoint_proof(src, msg)
        elif isinstance(msg, FetchState):
            self._on_fetch_state(src, msg)
        elif isinstance(msg, StateReply):
            self._on_state_reply(src, msg)
        elif isinstance(msg, FetchCommitted):
            self._on_fetch_committed(src, msg)
        elif isinstance(msg, CommitProof):
            self._on_commit_proof(msg)

    # -- durability -------------------------------------------------------------------------

    def _recover(self, record: msgspec.Struct) -> None:
        # Replay is monotone: a record older than what the state already holds (appended
        # after a compaction in the same batch) changes nothing.
        if isinstance(record, ViewRecord):
            if record.view > self.view or (record.view == self.view and record.active):
                self.view, self.active = record.view, record.active
        elif isinstance(record, StableCheckpoint):
            if record.seq > self.stable_seq:
                self.stable_seq = record.seq
                self.stable_digest = record.digest
                self.stable_proof = record.proof
                self.stable_image = record.image
                self.stable_index = record.index
                self.log.collect_garbage(record.seq)
        elif isinstance(record, PrePrepare):
            if record.seq > self.stable_seq:
                slot = self.log.slot(record.seq)
                if slot.pre_prepare is None or record.view >= slot.pre_prepare.view:
                    slot.pre_prepare = record
        elif isinstance(record, PreparedCert):
            if record.pre_prepare.seq > self.stable_seq:
                self.log.slot(record.pre_prepare.seq).set_cert(record)
        elif isinstance(record, Decided):
            if record.pre_prepare.seq > self.stable_seq:
                self.log.slot(record.pre_prepare.seq).decided = record.pre_prepare
        else:
            raise TypeError(f"not a pbft record: {type(record).__name__}")

    def durable_state(self) -> list[msgspec.Struct]:
        """Everything that must survive a crash, as WAL records (a compaction rewrites the
        WAL with exactly this): the view, the stable checkpoint, the live slots."""
        records: list[msgspec.Struct] = [ViewRecord(self.view, self.active)]
        stable = self._stable_record()
        if stable is not None:
            records.append(stable)
        for seq, slot in sorted(self.log.slots.items()):
            if seq <= self.stable_seq:
                continue
            if slot.pre_prepare is not None:
                records.append(slot.pre_prepare)
            if slot.cert is not None:
                records.append(slot.cert)
            if slot.decided is not None:
                records.append(Decided(slot.decided))
        return records

    # -- clients ----------------------------------------------------------------------------

    def _handle_request(self, cmd: Command) -> None:
        rid = cmd.request_id
        done = self.executed.get(rid)
        if done is not None:
            self._answer_duplicate(cmd, done[0])
            return
        if rid in self.pending:
            return  # a retry of a request still on its way
        self.pending[rid] = (cmd, self.now)
        if not self.active:
            return  # the new view's primary takes it from its own pending requests
        if self.vc_deadline == INF:
            self.vc_deadline = self.now + self._timeout()
        if self.primary(self.view) == self.me and rid not in self.assigned:
            self.queue[rid] = cmd
            self._assign()

    def _answer_duplicate(self, cmd: Command, seq: int) -> None:
        """A request id executed before: never a second number. A put or an order has one
        possible result, so answer it again; other results we cannot know (see module)."""
        self.duplicates += 1
        if cmd.op == "put":
            value = cmd.value
        elif cmd.op == "order":
            value = cmd.order.order_id if cmd.order else cmd.request_id
        else:
            return
        reply = ClientReply(cmd.request_id, "ok", self.me, term=0, seq=seq, value=value)
        self.out.send(cmd.client, reply)

    def _assign(self) -> None:
        """Primary: give queued requests the next numbers, as far as the window allows: a
        batch per number, at most `pipeline` numbers in flight unless the oldest queued
        request has waited `batch_delay` already."""
        if not self.active or self.primary(self.view) != self.me or self._assigning:
            return
        self._assigning = True  # deciding (n = 1) executes, which assigns again
        try:
            high = self.stable_seq + self.opts.window
            while self.queue and self.next_seq <= high:
                if self.next_seq - 1 - self.last_exec >= self.opts.pipeline:
                    oldest = self.pending.get(next(iter(self.queue)))
                    due = (oldest[1] if oldest else self.now) + self.opts.batch_delay
                    if due > self.now:
                        self.batch_deadline = min(self.batch_deadline, due)
                        return
                cmds: list[Command] = []
                while self.queue and len(cmds) < self.opts.batch:
                    rid, cmd = next(iter(self.queue.items()))
                    del self.queue[rid]
                    if rid not in self.assigned and rid not in self.executed:
                        cmds.append(cmd)
                if not cmds:
                    continue
                seq = self.next_seq
                self.next_seq += 1
                first, rest = cmds[0], tuple(cmds[1:])
                digest = command_digest(first, rest)
                pp = self.signer.sign(PrePrepare(self.view, seq, digest, self.me, first, rest))
                slot = self.log.slot(seq)
                self._accept_pre_prepare(slot, pp)
                self._broadcast(pp)
                self._check(slot)
        finally:
            self._assigning = False

    # -- the normal case --------------------------------------------------------------------

    def _on_pre_prepare(self, pp: PrePrepare) -> None:
        early = (pp.view == self.view and not self.active) or (
            self.view < pp.view <= self.view + self.n
        )
        if early and len(self.early) < self.opts.window:
            # The new primary's pre-prepares can overtake its NEW-VIEW (or it reached us
            # late): keep them for when we enter that view.
            self.early[(pp.view, pp.seq)] = pp
            return
        if pp.view != self.view or not self.active:
            self._drop("wrong_view")
            return
        if pp.sender != self.primary(pp.view) or pp.sender == self.me:
            self._drop("not_primary")
            return
        if not self._in_window(pp.seq):
            self._drop("out_of_window")
            return
        slot = self.log.slot(pp.seq)
        if slot.decided is not None and slot.decided.digest != pp.digest:
            self._drop("conflicts_decided")
            return
        held = slot.pre_prepare
        if held is not None and held.view == pp.view:
            if held.digest != pp.digest:
                self._drop("equivocation")  # a second pre-prepare for (view, seq)
            return
        self._accept_pre_prepare(slot, pp)
        self._check(slot)

    def _accept_pre_prepare(self, slot: Slot, pp: PrePrepare) -> None:
        slot.pre_prepare = pp
        self.out.persist.append(pp)
        for cmd in requests_of(pp):
            self.assigned[cmd.request_id] = pp.seq
        if self.primary(pp.view) != self.me:
            prepare = self.signer.sign(Prepare(pp.view, pp.seq, pp.digest, self.me))
            slot.add_prepare(prepare)
            self._broadcast(prepare)

    def _vote_ok(self, view: int, seq: int) -> bool:
        # Votes for a view we are about to enter are kept (they may overtake the NEW-VIEW),
        # but not for arbitrary future views: a faulty replica could fill our memory.
        if not self.view <= view <= self.view + self.n:
            self._drop("wrong_view")
            return False
        if not self._in_window(seq):
            self._drop("out_of_window")
            return False
        return True

    def _on_prepare(self, m: Prepare) -> None:
        if not self._vote_ok(m.view, m.seq):
            return
        if m.sender == self.primary(m.view):
            self._drop("prepare_from_primary")
            return
        slot = self.log.slot(m.seq)
        slot.add_prepare(m)
        self._check(slot)

    def _on_commit(self, m: Commit) -> None:
        if not self._vote_ok(m.view, m.seq):
            return
        slot = self.log.slot(m.seq)
        slot.add_commit(m)
        self._check(slot)

    def _check(self, slot: Slot) -> None:
        """Move a slot of the current view on: prepared, then committed, then execute."""
        pp = slot.pre_prepare
        if not self.active or pp is None or pp.view != self.view:
            return
        key = (pp.view, pp.digest)
        if not slot.prepared_in(pp.view):
            primary = self.primary(pp.view)
            got = slot.prepares.get(key)
            # 2f prepares from backups: with the pre-prepare, a quorum. Counted before the
            # sort, as most votes arrive while the slot is short of one.
            if got is None or len(got) - (primary in got) < self.quorum - 1:
                return
            votes = [p for s, p in sorted(got.items()) if s != primary]
            cert = PreparedCert(pp, tuple(votes[: self.quorum - 1]))
            slot.set_cert(cert)
            self.out.persist.append(cert)
            self.prepared_count += 1
            commit = self.signer.sign(Commit(pp.view, pp.seq, pp.digest, self.me))
            slot.add_commit(commit)
            self._broadcast(commit)
        if slot.decided is None:
            commits = slot.commits.get(key, {})
            if len(commits) >= self.quorum:
                proof = tuple(c for _, c in sorted(commits.items()))[: self.quorum]
                self._decide(slot, pp, proof)

    def _decide(self, slot: Slot, pp: PrePrepare, proof: tuple[Commit, ...]) -> None:
        slot.decided = pp
        slot.commit_proof = proof
        self.out.persist.append(Decided(pp))
        self.committed_count += 1
        self.commit_index = max(self.commit_index, pp.seq)
        self._execute()

    def _execute(self) -> None:
        """Execute decided requests strictly in sequence order; pause at a checkpoint until
        the runtime hands its image to on_snapshot."""
        ran = False
        while self.awaiting_snapshot is None:
            seq = self.last_exec + 1
            slot = self.log.get(seq)
            if slot is None or slot.decided is None:
                break
            self.last_exec = seq
            view = slot.decided.view
            for cmd in requests_of(slot.decided):
                rid = cmd.request_id
                self.executed[rid] = (seq, cmd)
                if len(self.executed) > MAX_EXECUTED:
                    del self.executed[next(iter(self.executed))]
                self.pending.pop(rid, None)
                self.queue.pop(rid, None)
                self.exec_index += 1
                self.out.committed.append(
                    Committed(self.exec_index, 0, cmd, reply=seq > self.replay_upto, view=view)
                )
                ran = True
            if seq % self.opts.checkpoint_interval == 0:
                self.awaiting_snapshot = seq
                self.out.want_snapshot = True
        if ran:
            self.backoff = 0
            if self.active:
                # Paper 4.5.2: stop the timer, restart it if other requests still wait.
                self.vc_deadline = self.now + self._timeout() if self.pending else INF
            if self.queue:
                self._assign()  # numbers in flight went down: the next batch may go

    # -- catching up on decisions -----------------------------------------------------------

    def _periodic(self) -> None:
        """Retransmission the transport does not do for us (every timeout / 2)."""
        later = sorted((v for v in self.seen_views.values() if v > self.view), reverse=True)
        if self.active and len(later) >= self.f + 1:
            # f+1 replicas (one of them correct) work in a later view we never entered
            # (we were down or cut off): ask for it; they answer with its NEW-VIEW.
            self._start_view_change(later[self.f], escalate=False)
        if not self.active and self.own_vc is not None:
            self._broadcast(self.own_vc)
        msg = self.last_checkpoint_msg
        if msg is not None and msg.seq > self.stable_seq:
            self._broadcast(msg)  # not stable here yet: others may have missed ours
        oldest = next(iter(self.pending.values()), None)
        stuck = oldest is not None and oldest[1] + self.opts.view_change_timeout / 2 <= self.now
        # Numbers above what we executed are being voted on, and we executed nothing since
        # the last round: we may have lost the messages that decided the next one.
        stalled = self.log.max_seq() > self.last_exec == self.exec_at_periodic
        self.exec_at_periodic = self.last_exec
        if not self.active or stuck or stalled or self.commit_index > self.last_exec:
            self._fetch_committed()
        if self.target is not None and self.fetch_deadline == INF:
            self.fetch_deadline = self.now

    def _fetch_committed(self) -> None:
        self._broadcast(self.signer.sign(FetchCommitted(self.last_exec + 1, self.me)))

    def _on_fetch_committed(self, src: str, m: FetchCommitted) -> None:
        if m.from_seq <= self.stable_seq and self.stable_seq > 0:
            # It is behind our stable checkpoint: the proof lets it fetch the state.
            proof = CheckpointProof(self.stable_seq, self.stable_proof, self.me)
            self.out.send(src, self.signer.sign(proof))
        start = max(m.from_seq, self.stable_seq + 1)
        for seq in range(start, min(start + FETCH_BATCH, self.commit_index + 1)):
            slot = self.log.get(seq)
            if slot is not None and slot.decided is not None and slot.commit_proof:
                proof_msg = CommitProof(slot.decided, slot.commit_proof, self.me)
                self.out.send(src, self.signer.sign(proof_msg))

    def _on_commit_proof(self, m: CommitProof) -> None:
        pp = m.pre_prepare
        if pp.seq <= self.last_exec or not self._in_window(pp.seq):
            return
        slot = self.log.slot(pp.seq)
        if slot.decided is not None:
            return
        if not self._valid_commit_proof(m):
            self._drop("bad_commit_proof")
            return
        self._decide(slot, pp, m.commits)

    def _valid_commit_proof(self, m: CommitProof) -> bool:
        pp = m.pre_prepare
        if pp.sender != self.primary(pp.view) or not well_formed_pre_prepare(pp):
            return False
        if not self.verify_cert(pp):
            return False
        senders: set[str] = set()
        for c in m.commits:
            if (c.view, c.seq, c.digest) != (pp.view, pp.seq, pp.digest):
                return False
            if c.sender in senders or c.sender not in self.replica_set:
                return False
            if not self.verify_cert(c):
                return False
            senders.add(c.sender)
        return len(senders) >= self.quorum

    # -- status -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        primary = self.primary(self.view)
        role = "primary" if primary == self.me else "backup"
        if not self.active:
            role = "view_changing"
        return {
            "role": role,
            "term": self.view,
            "leader": primary if self.active else None,
            "view": self.view,
            "primary": primary,
            "commit_index": self.commit_index,
            "applied_index": self.last_exec,
            "log": len(self.log),
            "lease_expiry": None,
            "seq": self.next_seq,
            "low_watermark": self.stable_seq,
            "high_watermark": self.stable_seq + self.opts.window,
            "checkpoint": self.stable_seq,
            "prepared": self.prepared_count,
            "committed": self.committed_count,
            "view_changes": self.view_changes,
            "pending": len(self.pending),
            "duplicates": self.duplicates,
            "byzantine": self.byz.mode,
            "f": self.f,
            "dropped": sum(self.drops.values()),
            "drops": dict(self.drops),
        }
