"""The sans-I/O protocol contract: inputs in, one `Ready` batch of obligations out.

A protocol object never touches a socket, a clock, a file or the module-level random.
It is driven by these inputs, each carrying `now` (the node's own clock, in seconds):

- `start(now, recovered)`: once, with the durable records recovered from the WAL, in the
  order they were persisted;
- `on_message(now, src, msg)`: a peer message (one of the protocol's `messages` types);
- `on_client(now, client, request)`: a client request arriving from endpoint `client`;
  `on_clients(now, client, requests)` several at once (a client's bundle): by default one
  `on_client` each, and a protocol may do better (Raft replicates them in one message);
- `on_tick(now)`: the deadline the protocol last asked for has passed.

Every input returns a `Ready`. The caller (the replica runtime, or the in-memory test
network) MUST carry out its fields in this order, the order of obligation:

0. `parallel`: messages that may leave BEFORE this batch's records are on disk, because
   they carry nothing but what those records hold: a leader's AppendEntries of its own new
   entries, sent while the leader's own fsync runs (Raft thesis 10.2.1; the leader counts
   itself towards a commit only once its write returned, which the caller's next input
   guarantees). Never a vote, a term or an acknowledgement. The fence is automatic: a
   record appended to `persist` holds every parallel message of its batch back until the
   fsync (`barrier`), unless the protocol wrote it with `persist_overtakable` (the records
   those messages carry). `seal` applies the rule; `merge` seals both sides, so a batch
   can never forget it, and demotes later `parallel` messages once a barrier stands.
1. `persist`: write every record durably (append + fsync) BEFORE any message of this batch
   leaves. A vote or a log entry acknowledged before it is on disk is how replicas lie.
2. `messages`: send each (destination, message) pair; destinations are peer ids, client
   endpoint ids (replies) or "broker" (side effects carrying a fencing token).
3. `restore` first (replace the state machine with a peer's image), then `committed`:
   apply each command to the state machine, in order; where `reply` is set,
   answer the command's client with the result (this node accepted the request).
   `reads`: answer each read from the state machine once everything up to its index is
   applied (ReadIndex / lease reads).
   `after`: messages sent once this batch's answers are out: notices no answer waits for
   (an EPaxos command leader's Commit to its peers leaves after its client's answer).
   `persist_after`: records appended only once this batch's messages are sent and its
   answers given, and with no fsync of their own: the next batch's fsync makes them
   durable, and a machine crash before it may lose them. Nothing may depend on them being
   durable: an EPaxos Commit record, whose decision is already durable at a quorum (a
   replica that loses one recovers the instance and finds the same decision).
4. `events`: publish as telemetry.
5. `next_deadline`: call `on_tick` when the node clock reaches it (None: no wish).

Snapshots: `want_snapshot` asks the runtime for a state machine image at the applied index,
handed back through `on_snapshot`; `restore` tells it to replace the state machine with an
image received from a peer. `compact`, when set, is the protocol's complete durable state
(a snapshot record, the hard state, the entries after the snapshot): the runtime replaces
the whole WAL with it atomically, then appends this batch's `persist`. Log compaction, so
the WAL does not grow with the whole history. Set it with `compact_to(records)`, never by
hand: the records are the state as of that call, so whatever the batch persisted before
(`persist`, `persist_after`) is inside them and is dropped, and only what it persists
after the call is appended after the rewrite. Merging keeps the same order: a later
batch's compaction supersedes everything persisted before it, never what comes after.

Durable floor: a protocol whose snapshots are durable says so with `durable_floor(index)`
in the batch that compacts to a snapshot (or restores one it persisted, or starts from
one): every command up to `index` is then on its disk in a snapshot and will never be
applied again. The event leaves after the batch's writes (obligation 4 after 1), so it
never runs ahead of the disk. The checkers forget their per-index rows below every
node's floor; a protocol that never says one (`reports_durable_floor` off, the default,
plugins included) keeps them all: the safe default, at the cost of memory in a long run.
"""

from __future__ import annotations

import abc
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from protocols.base.errors import ConfigError
from protocols.base.events import DURABLE_FLOOR
from protocols.base.wire import OPS, READ_MODES, ClientReply, ClientRequest, Command
from protocols.display import DEFAULT_COLUMNS, DEFAULT_ROLES, Column, Display, Role

if TYPE_CHECKING:
    from protocols.base.mutations import Mutation


ORDERINGS = ("total", "per_key")


@dataclass(frozen=True, slots=True)
class Event:
    """One telemetry event: a kind from `protocols.base.events` plus its fields."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Committed:
    """A command the protocol has decided, at `index` (the sequence number) in `term`."""

    index: int
    term: int
    command: Command
    reply: bool = False  # this node accepted the request: answer the client after apply
    # The view (PBFT) the decision was made in, when `term` cannot say it: telemetry for the
    # checkers (two requests decided at one index in one view is a split brain), not state.
    view: int | None = None


@dataclass(frozen=True, slots=True)
class ReadReady:
    """A read the runtime may answer once the state machine has applied `index`.

    Indices are log positions, but the runtime's applied index only moves with commands:
    a protocol whose log holds entries that are not commands (a leader's empty entry) must
    give the last command index at or below its read index, or the read waits forever."""

    request: ClientRequest
    client: str
    index: int
    term: int


@dataclass(frozen=True, slots=True)
class SnapshotImage:
    """A state machine image taken at `index` (term `term`); `data` is opaque to protocols."""

    index: int
    term: int
    data: bytes


@dataclass(slots=True, init=False)
class Ready:
    """One batch of outputs. Field order is the order the caller must carry them out."""

    parallel: list[tuple[str, msgspec.Struct]] = field(default_factory=list)
    persist: list[msgspec.Struct] = field(default_factory=list)
    messages: list[tuple[str, msgspec.Struct]] = field(default_factory=list)
    committed: list[Committed] = field(default_factory=list)
    reads: list[ReadReady] = field(default_factory=list)
    after: list[tuple[str, msgspec.Struct]] = field(default_factory=list)
    persist_after: list[msgspec.Struct] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    next_deadline: float | None = None
    want_snapshot: bool = False
    restore: SnapshotImage | None = None
    compact: list[msgspec.Struct] | None = None  # set through compact_to
    barrier: bool = False  # persists state (a term, a vote) no later message may overtake
    # The fence bookkeeping of `seal`: `persist[:_sealed]` is judged already; of the records
    # after it, `_overtakable` were written with persist_overtakable.
    _sealed: int = field(default=0, init=False, repr=False, compare=False)
    _overtakable: int = field(default=0, init=False, repr=False, compare=False)

    def __init__(
        self,
        parallel: list[tuple[str, msgspec.Struct]] | None = None,
        persist: list[msgspec.Struct] | None = None,
        messages: list[tuple[str, msgspec.Struct]] | None = None,
        committed: list[Committed] | None = None,
        reads: list[ReadReady] | None = None,
        after: list[tuple[str, msgspec.Struct]] | None = None,
        persist_after: list[msgspec.Struct] | None = None,
        events: list[Event] | None = None,
        next_deadline: float | None = None,
        want_snapshot: bool = False,
        restore: SnapshotImage | None = None,
        compact: list[msgspec.Struct] | None = None,
        barrier: bool = False,
    ) -> None:
        # Written out rather than the dataclass's default factories: every protocol input
        # makes one, and list literals cost half of what eight factory calls do.
        self.parallel = [] if parallel is None else parallel
        self.persist = [] if persist is None else persist
        self.messages = [] if messages is None else messages
        self.committed = [] if committed is None else committed
        self.reads = [] if reads is None else reads
        self.after = [] if after is None else after
        self.persist_after = [] if persist_after is None else persist_after
        self.events = [] if events is None else events
        self.next_deadline = next_deadline
        self.want_snapshot = want_snapshot
        self.restore = restore
        self.compact = compact
        self.barrier = barrier
        self._sealed = 0
        self._overtakable = 0

    def send(self, dst: str, msg: msgspec.Struct) -> None:
        self.messages.append((dst, msg))

    def send_parallel(self, dst: str, msg: msgspec.Struct) -> None:
        """A message that may leave before this batch's fsync (see obligation 0): it does
        unless the batch persists a record other than `persist_overtakable` ones."""
        if self.barrier:
            self.messages.append((dst, msg))
        else:
            self.parallel.append((dst, msg))

    def send_after(self, dst: str, msg: msgspec.Struct) -> None:
        """A message that leaves after this batch's answers (see obligation 3)."""
        self.after.append((dst, msg))

    def persist_overtakable(self, record: msgspec.Struct) -> None:
        """Persist a record this batch's parallel messages may overtake: only what those
        messages carry themselves (a leader's own new entries, a command leader's own
        proposal). Everything else goes to `persist` and fences them."""
        self.persist.append(record)
        self._overtakable += 1

    def seal(self) -> Ready:
        """Apply the fence: a record persisted since the last seal that is not overtakable
        (a term, a vote, a promise) raises the barrier. Idempotent; `merge` calls it on
        both batches and every BatchingProtocol input on its own, so it cannot be
        forgotten. Returns the batch."""
        if len(self.persist) - self._sealed > self._overtakable:
            self.raise_barrier()
        self._sealed, self._overtakable = len(self.persist), 0
        return self

    def raise_barrier(self) -> None:
        """Nothing of this batch may leave before its fsync: demote the parallel messages
        queued so far, and any sent later. `seal` calls it; a protocol need not."""
        self.barrier = True
        if self.parallel:
            self.messages[:0] = self.parallel
            self.parallel = []

    def compact_to(self, records: list[msgspec.Struct]) -> None:
        """Replace the WAL with `records`, the protocol's complete durable state as of this
        call. What this batch persisted before it is part of that state and is dropped (it
        would otherwise land after the rewrite, older than it); what it persists after this
        call is appended after the rewrite. A compaction holds the term and the vote: a
        barrier, as any record that is not overtakable."""
        self.compact = list(records)
        self.persist = []
        self.persist_after = []
        self._sealed = self._overtakable = 0
        self.raise_barrier()

    def event(self, kind: str, **data: Any) -> None:
        self.events.append(Event(kind, data))

    def durable_floor(self, index: int, replicas: tuple[str, ...]) -> None:
        """Say this node's durable floor (see the module docstring): call it in the batch
        that made the snapshot at `index` durable, and at start from one."""
        self.events.append(Event(DURABLE_FLOOR, {"index": index, "replicas": list(replicas)}))

    def merge(self, later: Ready) -> Ready:
        """Fold a later batch into this one, keeping the order of obligation."""
        self.seal()
        later.seal()
        if self.barrier:
            # What this batch persists first (a vote, a term) must be on disk before
            # anything later leaves, however harmless that looks on its own.
            self.messages.extend(later.parallel)
        else:
            self.parallel.extend(later.parallel)
        self.barrier = self.barrier or later.barrier
        if later.compact is not None:
            # The later compaction is the protocol's whole state after everything this
            # batch persisted (compact_to's rule): it supersedes an earlier compaction and
            # every record persisted before it; the later batch's own records come after.
            self.compact = later.compact
            self.persist = list(later.persist)
            self.persist_after = list(later.persist_after)
        else:
            self.persist.extend(later.persist)
            self.persist_after.extend(later.persist_after)
        self._sealed = len(self.persist)
        self.messages.extend(later.messages)
        self.committed.extend(later.committed)
        self.reads.extend(later.reads)
        self.after.extend(later.after)
        self.events.extend(later.events)
        if later.next_deadline is not None:
            self.next_deadline = later.next_deadline
        self.want_snapshot = self.want_snapshot or later.want_snapshot
        if later.restore is not None:
            # The image replaces everything up to its index: commands decided earlier in
            # this batch at or below it are inside the image and must not be applied after it.
            self.restore = later.restore
            self.committed = [c for c in self.committed if c.index > later.restore.index]
        return self

    def is_empty(self) -> bool:
        return not (
            self.parallel
            or self.persist
            or self.messages
            or self.committed
            or self.reads
            or self.after
            or self.persist_after
            or self.events
            or self.want_snapshot
            or self.restore
            or self.compact is not None
        )


@dataclass(frozen=True)
class NodeConfig:
    """What a protocol instance is told about itself, validated before anything starts."""

    node_id: str
    replicas: tuple[str, ...]  # every replica id, this node included, in a stable order
    options: msgspec.Struct  # the protocol's own validated `Options`
    rng: random.Random  # the only randomness a protocol may use, seeded by the lab
    # What is wrong with a state machine image a peer sent for `index` (None: nothing).
    # The runtime knows the image format; a protocol asks before it persists an image,
    # so a forged or corrupt snapshot is dropped instead of crashing the node on restore
    # and, persisted, at every restart after.
    check_image: Callable[[bytes, int], str | None] = field(default=lambda data, index: None)
    # The WAL this node recovered from was corrupt (or was, and the node has not been
    # repaired since): `recovered` is a prefix of what it wrote, and it may have lost
    # records it acknowledged (its votes among them). Only a protocol whose class says
    # `repairs_corruption` is ever started so; the others refuse to start.
    damaged: bool = False
    # While damaged: the records the WAL still held after the corrupt one, decoded (what
    # lay between is lost, so they are evidence, not a log: how far this node had got).
    damaged_tail: tuple[msgspec.Struct, ...] = ()

    @property
    def peers(self) -> tuple[str, ...]:
        return tuple(r for r in self.replicas if r != self.node_id)

    @property
    def quorum(self) -> int:
        return len(self.replicas) // 2 + 1


class Protocol(abc.ABC):
    """Base class of every protocol, registered under the `labctl.protocols` entry points.

    Everything the lab needs to know about a protocol is declared here, on the class, once
    (docs/adding-a-protocol.md); the defaults describe a leader-based protocol like Raft.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    Options: ClassVar[type[msgspec.Struct]]
    messages: ClassVar[tuple[type[msgspec.Struct], ...]]  # peer message types (wire codec)
    records: ClassVar[tuple[type[msgspec.Struct], ...]]  # durable record types (WAL codec)
    # Sizes: what `labctl up` starts without --nodes; the fewest replicas it runs with
    # (`size_problem` refuses fewer); the sizes chaos runs and explorations pick by default
    # (one and two faults tolerated). `size_warning` says what a size wastes.
    default_nodes: ClassVar[int] = 3
    # Can a replica whose WAL is corrupt rejoin and be repaired from its peers
    # (`NodeConfig.damaged`)? Without it such a replica refuses to start (nodes/wal.py).
    repairs_corruption: ClassVar[bool] = False
    # Does the protocol say its durable floor (`Ready.durable_floor`)? Off: the checkers
    # keep every per-index row for the whole run (always correct, linear memory).
    reports_durable_floor: ClassVar[bool] = False
    min_nodes: ClassVar[int] = 1
    test_sizes: ClassVar[tuple[int, ...]] = (3, 5)
    # Every role name `status()["role"]` may report: which leads (counted as a leader,
    # named by a fault's "leader"), which campaigns, their glyphs and colours. No role
    # leads in a leaderless protocol (EPaxos), where "leader" names any running replica.
    roles: ClassVar[tuple[Role, ...]] = DEFAULT_ROLES
    # The protocol's columns in `labctl status` and the dashboard (keys of `status()`).
    columns: ClassVar[tuple[Column, ...]] = DEFAULT_COLUMNS
    # How replicas order commands, which is what the divergence checks compare: "total"
    # (every replica applies the same command at each index) or "per_key" (only commands
    # on one key are ordered, EPaxos; `Committed.index` is then the replica's own execution
    # position, 1, 2, 3... from each start).
    ordering: ClassVar[str] = "total"
    # On: the runtime's state machine keeps a session table: a request id committed twice
    # is applied once and answered from the table (Raft paper section 8). Off: each commit
    # of it is applied again, and the duplicate-apply checker reports that: a client's
    # retry that reaches the log twice is then a violation. Leave it off only for a
    # protocol that never commits one request id twice, or one unsafe by design (naive).
    exactly_once: ClassVar[bool] = False
    # A byzantine-tolerant protocol: clients send each request to every replica and believe
    # a result once f+1 replicas (f = (n-1)//3) sent matching replies; every replica that
    # received the request answers it (Committed.reply set on each).
    byzantine_tolerant: ClassVar[bool] = False
    # The words users read for this protocol's leader and its number (PBFT: "primary" of a
    # "view", EPaxos: "ballot"): events and the dashboard say "r1 became primary, view 1".
    leader_word: ClassVar[str] = "leader"
    term_word: ClassVar[str] = "term"
    # Whether a client reply's `term` means something (the leader's term). PBFT and EPaxos
    # replies carry 0 there, so `labctl client` leaves the field out for them.
    replies_carry_term: ClassVar[bool] = True
    # The misbehaviours `set_byzantine` accepts (`labctl fault byzantine NODE --mode M`).
    byzantine_modes: ClassVar[tuple[str, ...]] = ()
    # Options that make a short chaos run exercise what only a long one would otherwise
    # (Raft: snapshots and InstallSnapshot under faults).
    short_run_options: ClassVar[dict[str, Any]] = {}
    # The named bugs this protocol can run with (`Options.mutate`, protocols/base/mutations.py).
    mutations: ClassVar[tuple[Mutation, ...]] = ()
    # "module:ATTRIBUTE" of a mapping mutation name -> targeted schedule on simnet, the
    # one situation the bug needs (protocols/targeted.py; `labctl selftest` falls back on
    # it). A name, not an import: the core never imports its own test schedules.
    targeted: ClassVar[str] = ""
    # A protocol built to break (naive, the seed's split-brain baseline): a scenario with no
    # expectation for it does not hold it to `safe = true`, as it does every other one.
    unsafe_by_design: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.ordering not in ORDERINGS:
            raise TypeError(f"{cls.__name__}.ordering must be one of {ORDERINGS}")
        cls.display().check()  # a bad declaration fails when the protocol is imported

    @classmethod
    def display(cls) -> Display:
        """The roles, columns and words readers in other processes need, as data."""
        return Display(cls.roles, cls.columns, cls.leader_word, cls.term_word)

    @classmethod
    def size_problem(cls, replicas: int) -> str | None:
        """Why the protocol cannot run with `replicas` replicas (refused before anything
        starts), or None."""
        if replicas < cls.min_nodes:
            return f"{cls.name} needs at least {cls.min_nodes} replicas, got {replicas}"
        return None

    def __init__(self, config: NodeConfig) -> None:
        self.config = config

    @classmethod
    def size_warning(cls, replicas: int) -> str | None:
        """What a user starting `replicas` replicas should know (a size that wastes
        replicas or tolerates no fault), or None. Said when a lab starts or swaps."""
        return None

    def check_config(self, config: NodeConfig) -> None:
        """Raise unless `config` carries this protocol's validated options and a sane
        replica set (this node in it, no id twice): a lab misconfigured fails at start."""
        if not isinstance(config.options, self.Options):
            got = type(config.options).__name__
            raise TypeError(f"{self.name} needs {self.name} Options, got {got}")
        validate = getattr(config.options, "validate", None)
        if validate is not None:
            validate()
        if config.node_id not in config.replicas:
            raise ValueError(f"{config.node_id!r} is not one of the replicas {config.replicas}")
        if len(set(config.replicas)) != len(config.replicas):
            raise ValueError(f"duplicate replica ids in {config.replicas}")

    @abc.abstractmethod
    def start(self, now: float, recovered: list[msgspec.Struct]) -> Ready: ...

    @abc.abstractmethod
    def on_message(self, now: float, src: str, msg: msgspec.Struct) -> Ready: ...

    @abc.abstractmethod
    def on_client(self, now: float, client: str, request: ClientRequest) -> Ready: ...

    def on_clients(self, now: float, client: str, requests: list[ClientRequest]) -> Ready:
        """Several requests from one client at once; the same as one `on_client` each."""
        out = Ready()
        for request in requests:
            out.merge(self.on_client(now, client, request))
        return out

    @abc.abstractmethod
    def on_tick(self, now: float) -> Ready: ...

    def on_snapshot(self, now: float, image: SnapshotImage) -> Ready:
        """The runtime's answer to `want_snapshot`; protocols without snapshots ignore it."""
        return Ready()

    def set_byzantine(self, now: float, mode: str | None) -> Ready:
        """Start misbehaving as `mode` (one of `byzantine_modes`), or stop (None). The
        protocol-level wrapper (docs/architecture.md, PBFT): the node keeps running the
        protocol, and what it sends is what a liar would send."""
        if mode is None:
            return Ready()
        modes = ", ".join(self.byzantine_modes) or "none"
        raise ConfigError(f"{self.name} has no byzantine mode {mode!r} (modes: {modes})")

    @abc.abstractmethod
    def status(self) -> dict[str, Any]:
        """Fields for `labctl status` and the dashboard: at least role, term, leader,
        commit_index, applied_index, log (length), lease_expiry (node clock or None)."""


def client_quorum(protocol: type[Protocol], replicas: int) -> int:
    """Matching replies from distinct replicas a client needs before it believes a result:
    f+1 for a byzantine-tolerant protocol (f = (n-1)//3 liars cannot outvote one honest
    replica), else the first reply. Above 1, clients send each request to every replica."""
    return (replicas - 1) // 3 + 1 if protocol.byzantine_tolerant else 1


def reply(
    request: ClientRequest,
    status: str,
    node: str,
    **fields: Any,
) -> ClientReply:
    """A client reply for `request`; the one place replies are built from requests."""
    return ClientReply(request_id=request.command.request_id, status=status, node=node, **fields)


def request_problem(request: ClientRequest) -> str | None:
    """Why a protocol must refuse `request` (answering "fail" with this as the error), or
    None. Every protocol asks this before a request can reach its log: an op the state
    machine has no meaning for would be committed, replayed from the WAL at every restart,
    and refused by every replica alike."""
    command = request.command
    if command.op not in OPS or request.read_mode not in READ_MODES:
        return f"unknown op {command.op!r} or read mode {request.read_mode!r}"
    return None
