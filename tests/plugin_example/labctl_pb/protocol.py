"""Primary-backup with view changes: the smallest protocol that is safe under the lab's
faults, written against the sans-I/O contract (protocols/base/contract.py).

The primary of view v is replica v mod n. It orders every client request (reads too:
they go through the log, which makes them linearizable without leases) by appending an
entry and sending it to the backups; an entry of the current view is committed once a
majority, the primary included, has it on disk, and everything before it with it.

A backup that hears nothing from its primary for a view timeout moves to view v+1: it
promises (durably) to ignore older views and sends the primary of v+1 a DoViewChange
naming the end of its log. That primary starts the view once a majority of replicas whose
logs are no further ahead than its own moved there; its own log then holds every
committed entry (a committed entry is on a majority, and any two majorities meet), the
argument of Raft's election restriction with the view as the term. It appends a no-op of
the new view, which commits whatever the old primary left uncommitted, and repairs each
backup's log as Raft does: a Prepare names the entry before its own, a backup that does
not have it says so, and the primary steps back.

What it shows of the contract (docs/adding-a-protocol.md):
- one batch per input: `BatchingProtocol` (protocols/base/batching.py) opens `self.out`
  for each input and closes it with the fence; `_seal` adds the next deadline;
- persist: entries and the view go to the WAL before any message that depends on them;
  a batch that persists a new view is fenced (`Ready.seal`), so no parallel send of it
  overtakes the fsync;
- parallel sends: the primary's new entries leave with `send_parallel` while its own
  fsync runs (their records written with `persist_overtakable`), and it counts itself
  towards a commit only from its next input on (by then the runtime has finished every
  write of the batches before);
- snapshots and compaction: every `snapshot_every` committed entries it asks for an image
  (`want_snapshot`), and on `on_snapshot` replaces the WAL with its complete durable state
  (`compact_to`); a backup that needs what was compacted away gets the image (`restore`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from labctl_pb.messages import (
    MESSAGES,
    RECORDS,
    DoViewChange,
    EntriesRecord,
    Entry,
    Prepare,
    PrepareOk,
    Snapshot,
    SnapshotRecord,
    ViewRecord,
)
from protocols.base import (
    BrokerWrite,
    ClientRequest,
    Column,
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
from protocols.base.effects import AppliedOrders
from protocols.base.mutations import Mutation, check_mutate

BATCH = 64  # entries in one Prepare at most

PRIMARY, BACKUP, VIEW_CHANGE = "primary", "backup", "view_changing"

# The named bug this protocol can run with (`--mutate commit-alone`): one `if` beside the
# line it breaks (`_advance_commit`). `labctl selftest -p pb` must catch it;
# labctl_pb/targeted.py is the one situation that shows it, should explore miss it.
MUTATIONS = (
    Mutation(
        name="commit-alone",
        bug="the primary commits an entry once it is on its own disk, without a majority",
        source="Oki & Liskov, Viewstamped Replication (1988), section 4: commit needs a "
        "majority so that every later view's primary holds the entry",
        violations=("lost-write", "divergence", "nonlinearizable"),
        teaches="why a write is acknowledged only once a majority has it: a cut-off "
        "primary's acknowledged write is gone when the next view starts without it",
    ),
)


class Options(msgspec.Struct, forbid_unknown_fields=True):
    heartbeat_interval: float = 0.05
    view_timeout: float = 0.5  # randomized up to twice this, so replicas rarely collide
    snapshot_every: int = 1000  # committed entries between two snapshots
    mutate: str = ""  # one of MUTATIONS, or "" (protocols/base/mutations.py)

    def validate(self) -> None:
        if self.heartbeat_interval <= 0:
            raise ConfigError("option 'heartbeat_interval' must be > 0")
        if self.view_timeout <= 2 * self.heartbeat_interval:
            raise ConfigError("option 'view_timeout' must exceed twice 'heartbeat_interval'")
        if self.snapshot_every < 1:
            raise ConfigError("option 'snapshot_every' must be at least 1")
        check_mutate("pb", self.mutate, MUTATIONS)


class PrimaryBackup(BatchingProtocol):
    # -- what the lab needs to know, declared once (docs/adding-a-protocol.md) ----------
    name: ClassVar[str] = "pb"
    description: ClassVar[str] = "primary-backup with view changes (a plugin package)"
    Options = Options
    messages = MESSAGES
    records = RECORDS
    default_nodes: ClassVar[int] = 3
    exactly_once: ClassVar[bool] = True  # the runtime's session table drops a retry
    leader_word: ClassVar[str] = "primary"
    term_word: ClassVar[str] = "view"
    replies_carry_term: ClassVar[bool] = True  # a reply's term is the primary's view
    short_run_options: ClassVar[dict[str, Any]] = {"snapshot_every": 200}
    mutations = MUTATIONS
    # Named, not imported: targeted.py imports this module (protocols/targeted.py).
    targeted: ClassVar[str] = "labctl_pb.targeted:SCHEDULES"
    roles = (
        Role(PRIMARY, leads=True, glyph="▆", colour="#1d4e89"),
        Role(BACKUP, glyph="·", colour="#a9c6de"),
        Role(VIEW_CHANGE, candidate=True, glyph="░", colour="#f77f00", label="view change"),
    )
    columns = (
        Column("role", format="role", priority=2),
        Column("view", priority=3, right=True),
        Column("primary", priority=4),
        Column("commit_index", "commit", priority=5, right=True),
        Column("log", priority=6, right=True),
        Column("snapshot_index", "snap", priority=8, right=True, dashboard_only=True),
        Column("view_changes", "vc", format="count", priority=7, right=True),
    )

    def __init__(self, config: NodeConfig) -> None:
        super().__init__(config)
        self.check_config(config)
        self.opts: Options = config.options  # type: ignore[assignment]
        self.me = config.node_id
        self.ids = config.replicas
        self.quorum = config.quorum
        # Durable (the WAL holds them).
        self.view = 0
        self.log: list[Entry] = []  # the entries after the snapshot
        self.snap: SnapshotRecord | None = None
        # Volatile.
        self.state = VIEW_CHANGE  # until the view's primary is heard (or we are it)
        self.commit = 0
        self.durable = 0  # entries known to be on our disk (the primary counts itself)
        self.heard = 0.0  # when the primary was last heard, or a view change started
        self.timeout = self._draw_timeout()
        self.deadline = 0.0
        self.match: dict[str, int] = {}  # primary: the highest index each backup has
        self.next: dict[str, int] = {}  # primary: where each backup's next entries start
        self.votes: set[str] = set()  # primary-to-be: DoViewChanges it counts
        self.proposals: dict[int, str] = {}  # index -> request id this node accepted
        self.orders = AppliedOrders()  # an order's side effect leaves once
        self.view_changes = 0
        self.dropped = 0

    # -- the log ------------------------------------------------------------------------

    @property
    def snap_index(self) -> int:
        return self.snap.index if self.snap else 0

    @property
    def last_index(self) -> int:
        return self.log[-1].index if self.log else self.snap_index

    def view_at(self, index: int) -> int | None:
        if index == self.snap_index:
            return self.snap.view if self.snap else 0
        if self.snap_index < index <= self.last_index:
            return self.log[index - self.snap_index - 1].view
        return None  # compacted away, or beyond the end

    def _put(self, entries: list[Entry]) -> None:
        """Entries into the log: one at index i replaces i and everything after it."""
        for e in entries:
            if e.index <= self.snap_index:
                continue  # inside the snapshot: committed, so it is the same entry
            del self.log[e.index - self.snap_index - 1 :]
            self.log.append(e)

    def primary_of(self, view: int) -> str:
        return self.ids[view % len(self.ids)]

    def durable_state(self) -> list[msgspec.Struct]:
        """Everything that must survive a crash: what `compact` rewrites the WAL with."""
        records: list[msgspec.Struct] = [ViewRecord(self.view)]
        if self.snap is not None:
            records.append(self.snap)
        if self.log:
            records.append(EntriesRecord(list(self.log)))
        return records

    # -- inputs -------------------------------------------------------------------------

    # BatchingProtocol opens `self.out` for each input (`_begin`) and closes it
    # (`_finish`: our `_seal`, then the fence of `Ready.seal`); these add what is ours.

    def _begin(self, now: float, *, starting: bool = False) -> None:
        super()._begin(now, starting=starting)
        # Every write of an earlier batch is on disk by the time the runtime hands us a
        # new input (it fsyncs a batch before its next input): our own entries count now.
        self.durable = self.last_index

    def _seal(self, out: Ready) -> None:
        out.next_deadline = self.deadline

    def start(self, now: float, recovered: list[msgspec.Struct]) -> Ready:
        self._begin(now, starting=True)
        for record in recovered:
            if isinstance(record, ViewRecord):
                self.view = max(self.view, record.view)
            elif isinstance(record, SnapshotRecord):
                self.snap, self.log = record, []
            elif isinstance(record, EntriesRecord):
                self._put(record.entries)
        self.durable = self.last_index
        if self.snap is not None:
            # The state machine starts empty: the image is its starting point. What comes
            # after it is applied again once the primary says it is committed.
            self.out.restore = SnapshotImage(self.snap.index, self.snap.view, self.snap.data)
        self.commit = self.snap_index
        if not recovered and self.view == 0:
            # A fresh lab: everyone is in view 0, whose primary is the first replica.
            if self.me == self.primary_of(0):
                self._become_primary()
            else:
                self.state = BACKUP
                self.out.event(ev.BECAME_FOLLOWER, term=0, leader=self.primary_of(0))
        elif self.primary_of(self.view) == self.me:
            # A restart of this view's primary: never lead the same view twice. Entries it
            # sent before its fsync may be at the backups and not on its own disk; leading
            # again it would write different ones at the same (index, view).
            self.heard = now
            self._start_view_change(self.view + 1)
        else:
            self.state = VIEW_CHANGE  # a restart: wait for the view's primary
        self.heard = now
        self._arm()
        return self._finish()

    def on_tick(self, now: float) -> Ready:
        self._begin(now)
        if self.state == PRIMARY:
            for peer in self.config.peers:
                self._send_to(peer)  # the heartbeat: a backup missing entries says so
            # Our own last writes count from this input on (`_begin`): a cluster of one
            # commits them here rather than at its next request.
            self._advance_commit()
        elif now >= self.heard + self.timeout:
            self._start_view_change(self.view + 1)
        elif self.state == VIEW_CHANGE:
            self._send_dvc()  # it may have been lost
        self._arm()
        return self._finish()

    def on_client(self, now: float, client: str, request: ClientRequest) -> Ready:
        return self.on_clients(now, client, [request])

    def on_clients(self, now: float, client: str, requests: list[ClientRequest]) -> Ready:
        # One batch for the whole bundle, not one `Ready` per request merged: `_begin`
        # says our earlier entries are durable, which is true of earlier batches only.
        self._begin(now)
        appended = False
        for request in requests:
            problem = request_problem(request)
            if problem:
                self.out.send(client, reply(request, "fail", self.me, error=problem))
            elif self.state != PRIMARY:
                leader = self.primary_of(self.view) if self.state == BACKUP else None
                self.out.send(client, reply(request, "not_leader", self.me, leader=leader))
            else:
                # Reads too: answered from the state machine once their entry commits.
                self._append(request.command)
                self.proposals[self.last_index] = request.command.request_id
                appended = True
        if appended:
            for peer in self.config.peers:
                self._send_to(peer)
            self._advance_commit()  # a cluster of one
        return self._finish()

    def on_message(self, now: float, src: str, msg: msgspec.Struct) -> Ready:
        self._begin(now)
        if src not in self.config.peers or not _well_formed(msg):
            self.dropped += 1
            return self._finish()
        view = msg.view  # type: ignore[attr-defined]
        if view < self.view:
            return self._finish()  # a promise we made: nothing of an older view counts
        if view > self.view:
            if isinstance(msg, (Prepare, Snapshot)):
                self._adopt_view(view)  # the new view's primary: follow it
            else:
                self._start_view_change(view)  # others moved on: so do we
        if isinstance(msg, Prepare):
            self._on_prepare(src, msg)
        elif isinstance(msg, Snapshot):
            self._on_snapshot_msg(src, msg)
        elif isinstance(msg, PrepareOk):
            self._on_prepare_ok(src, msg)
        elif isinstance(msg, DoViewChange):
            self._on_dvc(src, msg)
        self._arm()
        return self._finish()

    def on_snapshot(self, now: float, image: SnapshotImage) -> Ready:
        """The runtime's image of the state machine at `image.index` (applied, so
        committed): the log before it goes, the WAL is rewritten."""
        self._begin(now)
        if self.snap_index < image.index <= self.commit:
            view = self.view_at(image.index)
            del self.log[: image.index - self.snap_index]
            self.snap = SnapshotRecord(image.index, image.term if view is None else view,
                                       image.data)  # fmt: skip
            self._compact()
        return self._finish()

    def _compact(self) -> None:
        # The whole durable state as of now: `compact_to` drops what this batch persisted
        # before (it is inside the records, and written again after them it would replay
        # twice), and fences the batch's parallel sends (the records hold the view).
        self.out.compact_to(self.durable_state())

    # -- the primary ----------------------------------------------------------------------

    def _append(self, command: Any) -> None:
        entry = Entry(self.last_index + 1, self.view, command)
        self.log.append(entry)
        # Overtakable: the Prepares that carry this entry may leave before the fsync
        # (`send_parallel`); a record of anything else (a view) would hold them back.
        self.out.persist_overtakable(EntriesRecord([entry]))

    def _send_to(self, peer: str) -> None:
        """The entries from where `peer` is believed to be (none: a heartbeat), or the
        snapshot when those were compacted away. A lost message shows on the next one: the
        backup lacks the entry before it and says so, and `next` steps back."""
        start = self.next[peer]
        if start <= self.snap_index:
            assert self.snap is not None
            self.out.send(peer, Snapshot(self.view, self.snap.index, self.snap.view,
                                         self.snap.data))  # fmt: skip
            self.next[peer] = self.snap_index + 1
            return
        entries = self.log[start - self.snap_index - 1 : start - self.snap_index - 1 + BATCH]
        prev_view = self.view_at(start - 1)
        assert prev_view is not None
        msg = Prepare(self.view, start - 1, prev_view, entries, self.commit)
        # Entries are what this batch persists and nothing more: they may leave while our
        # own fsync runs (a new view's batch raised the barrier, which demotes them).
        self.out.send_parallel(peer, msg)
        if entries:
            self.next[peer] = entries[-1].index + 1

    def _on_prepare_ok(self, src: str, m: PrepareOk) -> None:
        if self.state != PRIMARY:
            return
        if m.ok:
            self.match[src] = max(self.match[src], min(m.index, self.last_index))
            self.next[src] = max(self.next[src], self.match[src] + 1)
            self._advance_commit()
        else:
            self.next[src] = max(min(self.next[src], m.index + 1), 1)
            self._send_to(src)

    def _advance_commit(self) -> None:
        acked = sorted([self.durable, *(self.match[p] for p in self.config.peers)], reverse=True)
        quorum = 1 if self.opts.mutate == "commit-alone" else self.quorum
        index = acked[quorum - 1]
        # Only an entry of our own view is committed by counting (Raft's figure 8): an
        # older one may be overwritten by a primary that never saw it.
        if index > self.commit and self.view_at(index) == self.view:
            self._commit_to(index)

    def _become_primary(self) -> None:
        self.state = PRIMARY
        self.out.event(ev.BECAME_LEADER, term=self.view, how="view_change")
        self.match = {p: 0 for p in self.config.peers}
        self._append(None)  # commits what the last primary left, once a majority has it
        self.next = {p: self.last_index for p in self.config.peers}
        for peer in self.config.peers:
            self._send_to(peer)
        self._advance_commit()

    # -- backups ------------------------------------------------------------------------

    def _on_prepare(self, src: str, m: Prepare) -> None:
        if src != self.primary_of(m.view):
            self.dropped += 1
            return
        self._follow(m.view)
        if m.prev_index > self.last_index or (
            m.prev_index >= self.snap_index and self.view_at(m.prev_index) != m.prev_view
        ):
            # A gap, or a different entry at prev: step back (never below our commit,
            # which matches the primary's log).
            hint = min(self.last_index, max(self.commit, m.prev_index - 1))
            self.out.send(src, PrepareOk(self.view, hint, ok=False))
            return
        # From the first entry we do not have (or have from another view) on: the ones
        # before it we hold already, an older copy of the message did it.
        first = next((i for i, e in enumerate(m.entries)
                      if e.index > self.snap_index and self.view_at(e.index) != e.view), None)
        new = m.entries[first:] if first is not None else []
        if new:
            if new[0].index <= self.commit:
                self.dropped += 1  # a primary rewriting what we committed: not ours to do
                return
            self._put(new)
            self.out.persist.append(EntriesRecord(new))
        matched = m.prev_index + len(m.entries)
        # Sent after this batch's fsync: what it acknowledges is on disk when it arrives.
        self.out.send(src, PrepareOk(self.view, matched, ok=True))
        self._commit_to(min(m.commit, matched))

    def _on_snapshot_msg(self, src: str, m: Snapshot) -> None:
        if src != self.primary_of(m.view):
            self.dropped += 1
            return
        self._follow(m.view)
        if m.index > self.commit:
            if self.view_at(m.index) == m.snap_view:
                del self.log[: m.index - self.snap_index]  # keep what follows the image
            else:
                self.log = []
            self.snap = SnapshotRecord(m.index, m.snap_view, m.data)
            self.commit = m.index
            self.orders.clear()  # the image's applies are not ours to remember
            self.out.restore = SnapshotImage(m.index, m.snap_view, m.data)
            self._compact()
        self.out.send(src, PrepareOk(self.view, self.commit, ok=True))

    def _follow(self, view: int) -> None:
        self._heard()
        if self.state != BACKUP:
            self.state = BACKUP
            self.out.event(ev.BECAME_FOLLOWER, term=view, leader=self.primary_of(view))

    # -- view changes ---------------------------------------------------------------------

    def _adopt_view(self, view: int) -> None:
        """Promise, durably, to ignore every view before `view`."""
        if self.state == PRIMARY:
            self.out.event(ev.STEPPED_DOWN, term=self.view, reason="view_change")
        self.view, self.state, self.votes = view, VIEW_CHANGE, set()
        # Not overtakable: the batch's fence (`Ready.seal`, at `_finish`) holds every
        # message of it back until the promise is on disk.
        self.out.persist.append(ViewRecord(view))
        self._heard()

    def _start_view_change(self, view: int) -> None:
        self._adopt_view(view)
        self.view_changes += 1
        self.out.event(ev.BECAME_CANDIDATE, term=view)
        self._send_dvc()

    def _send_dvc(self) -> None:
        last_view = self.view_at(self.last_index) or 0
        target = self.primary_of(self.view)
        if target == self.me:
            self._on_dvc(self.me, DoViewChange(self.view, last_view, self.last_index))
        else:
            self.out.send(target, DoViewChange(self.view, last_view, self.last_index))

    def _on_dvc(self, src: str, m: DoViewChange) -> None:
        if self.state != VIEW_CHANGE or self.primary_of(self.view) != self.me:
            return
        mine = (self.view_at(self.last_index) or 0, self.last_index)
        if (m.last_view, m.last_index) <= mine:
            self.votes.add(src)  # a log ahead of ours is not counted: we may lack entries
        if len(self.votes | {self.me}) >= self.quorum:
            self._become_primary()

    # -- applying ---------------------------------------------------------------------------

    def _commit_to(self, index: int) -> None:
        index = min(index, self.last_index)
        for i in range(max(self.commit, self.snap_index) + 1, index + 1):
            entry = self.log[i - self.snap_index - 1]
            command = entry.command
            if command is None:
                continue  # a no-op: nothing to apply
            accepted = self.proposals.pop(i, None) == command.request_id
            self.out.committed.append(Committed(i, entry.view, command, reply=accepted))
            first = command.op == "order" and self.orders.first(command.request_id)
            if first and self.state == PRIMARY and entry.view == self.view:
                # Only the primary of the entry's own view sends its side effect, fenced by
                # that view: a later primary must not send it again (Raft does the same).
                self.out.send("broker", BrokerWrite(token=self.view, node=self.me, seq=i,
                              request_id=command.request_id, order=command.order))  # fmt: skip
        self.commit = max(self.commit, index)
        if self.commit - self.snap_index >= self.opts.snapshot_every:
            self.out.want_snapshot = True

    # -- timers and status ----------------------------------------------------------------

    def _draw_timeout(self) -> float:
        return self.opts.view_timeout * (1 + self.config.rng.random())

    def _heard(self) -> None:
        """The primary spoke, or a view change began: the view timeout starts again."""
        self.heard = self.now
        self.timeout = self._draw_timeout()

    def _arm(self) -> None:
        if self.state == PRIMARY:
            self.deadline = self.now + self.opts.heartbeat_interval
            return
        wake = self.heard + self.timeout
        if self.state == VIEW_CHANGE:
            wake = min(wake, self.now + self.opts.heartbeat_interval)  # resend DoViewChange
        self.deadline = wake

    def status(self) -> dict[str, Any]:
        primary = self.primary_of(self.view)
        return {
            "role": self.state,
            "term": self.view,
            "leader": primary if self.state in (PRIMARY, BACKUP) else None,
            "view": self.view,
            "primary": primary,
            "commit_index": self.commit,
            "applied_index": self.commit,
            "log": self.last_index,
            "snapshot_index": self.snap_index,
            "lease_expiry": None,
            "view_changes": self.view_changes,
            "dropped": self.dropped,
        }


def _well_formed(msg: msgspec.Struct) -> bool:
    """Bounds on what a peer may claim (the codec checked the types)."""
    if isinstance(msg, Prepare):
        ok = msg.view >= 0 and msg.prev_index >= 0 and msg.commit >= 0
        return ok and all(e.index == msg.prev_index + 1 + i and 0 <= e.view <= msg.view
                          for i, e in enumerate(msg.entries))  # fmt: skip
    if isinstance(msg, (PrepareOk, DoViewChange, Snapshot)):
        return msg.view >= 0
    return False
