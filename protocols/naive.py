"""The naive protocol: heartbeats and self-promotion, the seed's split-brain baseline.

Faithful to the seed's `wall_coord_breaks.py`: the leader heartbeats every 50 ms; a
follower that has heard no heartbeat for 300 ms makes itself leader, asking nobody, and
bumps its *local* term (followers never learn the leader's term, so two promotions land in
the same term, exactly as the seed prints). A leader accepts writes and assigns
seq = its log length + 1; a follower answers not_leader. Nothing ever makes a leader step
down, so healing the network repairs nothing.

Added to the seed so the damage is visible everywhere: best-effort replication. A leader
sends each new entry to its peers and, on heartbeat acks, whatever a follower is missing; a
follower appends an entry only at the next free seq and never repairs a conflicting one.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from protocols.base import (
    BrokerWrite,
    ClientRequest,
    Committed,
    ConfigError,
    NodeConfig,
    Protocol,
    ReadReady,
    Ready,
    reply,
    request_problem,
)
from protocols.base import events as ev
from protocols.base.mutations import check_mutate
from protocols.base.wire import Command
from protocols.display import FOLLOWER, LEADER

CATCH_UP_BATCH = 64


class Options(msgspec.Struct, forbid_unknown_fields=True):
    heartbeat_interval: float = 0.05
    election_timeout: float = 0.3
    replicate: bool = True
    initial_leader: str = ""  # default: the first replica, as r0 in the seed
    mutate: str = ""  # naive has no named mutations: it is broken by design

    def validate(self) -> None:
        if self.heartbeat_interval <= 0:
            raise ConfigError("option 'heartbeat_interval' must be > 0")
        if self.election_timeout <= self.heartbeat_interval:
            raise ConfigError("option 'election_timeout' must exceed 'heartbeat_interval'")
        check_mutate("naive", self.mutate, ())


class NaiveEntry(msgspec.Struct, frozen=True):
    term: int
    seq: int
    command: Command


# Durable records (WAL).
class TermRecord(msgspec.Struct, frozen=True, tag=True):
    term: int


class EntryRecord(msgspec.Struct, frozen=True, tag=True):
    entry: NaiveEntry


# Peer messages.
class Heartbeat(msgspec.Struct, frozen=True, tag=True):
    term: int
    log_len: int


class HeartbeatAck(msgspec.Struct, frozen=True, tag=True):
    log_len: int


class Append(msgspec.Struct, frozen=True, tag=True):
    term: int
    entries: list[NaiveEntry]


class NaiveProtocol(Protocol):
    name: ClassVar[str] = "naive"
    description: ClassVar[str] = "heartbeat + self-promotion, no votes: the split-brain baseline"
    Options = Options
    messages = (Heartbeat, HeartbeatAck, Append)
    records = (TermRecord, EntryRecord)
    exactly_once: ClassVar[bool] = False
    unsafe_by_design: ClassVar[bool] = True  # the baseline every other protocol must beat
    roles = (LEADER, FOLLOWER)  # nobody campaigns: a follower just promotes itself

    def __init__(self, config: NodeConfig) -> None:
        super().__init__(config)
        self.opts: Options = config.options  # type: ignore[assignment]
        self.me = config.node_id
        self.role = "follower"
        self.term = 0
        self.leader: str | None = None
        self.log: list[NaiveEntry] = []
        self.last_heartbeat = 0.0
        self.next_heartbeat = 0.0
        self.dropped = 0

    # -- inputs -------------------------------------------------------------------------

    def start(self, now: float, recovered: list[msgspec.Struct]) -> Ready:
        out = Ready()
        for record in recovered:
            if isinstance(record, TermRecord):
                self.term = record.term
            elif isinstance(record, EntryRecord):
                if record.entry.seq == len(self.log) + 1:
                    self.log.append(record.entry)
        # Everything recovered is re-applied: the state machine starts empty each run.
        out.committed.extend(Committed(e.seq, e.term, e.command) for e in self.log)
        self.last_heartbeat = now
        initial = self.opts.initial_leader or self.config.replicas[0]
        if not recovered and self.me == initial:
            # The seed's r0 starts as leader in term 1.
            self.term = 1
            out.persist.append(TermRecord(1))
            self._become_leader(now, out, how="initial")
        else:
            out.event(ev.BECAME_FOLLOWER, term=self.term, leader=None)
        out.next_deadline = now + self.opts.heartbeat_interval
        return out

    def on_tick(self, now: float) -> Ready:
        out = Ready()
        if self.role == "leader":
            if now >= self.next_heartbeat:
                self._broadcast_heartbeat(now, out)
        elif now - self.last_heartbeat > self.opts.election_timeout:
            # The seed's crucial line: self-promotion without asking anyone.
            self.term += 1
            out.persist.append(TermRecord(self.term))
            self._become_leader(now, out, how="self-promoted")
        out.next_deadline = now + self.opts.heartbeat_interval
        return out

    def on_message(self, now: float, src: str, msg: msgspec.Struct) -> Ready:
        out = Ready()
        if src not in self.config.peers:
            self.dropped += 1
            return out
        if isinstance(msg, Heartbeat):
            if self.role == "leader":
                return out  # a leader believes only itself
            if self.leader not in (None, src):
                # A follower keeps faith in the leader it follows: another node's claim
                # does not reset its failure detector (so, cut off from r0, r1 and r2 both
                # promote, as in the seed). Only a follower with no leader adopts one.
                return out
            self.last_heartbeat = now
            if self.leader != src:
                self.leader = src
                out.event(ev.BECAME_FOLLOWER, term=self.term, leader=src)
            if self.opts.replicate:
                out.send(src, HeartbeatAck(len(self.log)))
        elif isinstance(msg, HeartbeatAck):
            if self.role == "leader" and msg.log_len < len(self.log):
                missing = self.log[msg.log_len : msg.log_len + CATCH_UP_BATCH]
                out.send(src, Append(self.term, missing))
        elif isinstance(msg, Append):
            if self.role == "leader" or self.leader not in (None, src):
                return out
            for entry in msg.entries:
                if entry.seq == len(self.log) + 1:
                    self.log.append(entry)
                    out.persist.append(EntryRecord(entry))
                    out.committed.append(Committed(entry.seq, entry.term, entry.command))
                # An entry at a seq we already hold is ignored: naive cannot repair conflicts.
        else:
            self.dropped += 1
        return out

    def on_client(self, now: float, client: str, request: ClientRequest) -> Ready:
        out = Ready()
        command = request.command
        problem = request_problem(request)
        if problem:
            out.send(client, reply(request, "fail", self.me, error=problem))
            return out
        if self.role != "leader":
            out.send(client, reply(request, "not_leader", self.me, leader=self.leader))
            return out
        if command.op == "get":
            # Read locally: a naive leader has no idea whether it is still the leader.
            out.reads.append(ReadReady(request, client, len(self.log), self.term))
            return out
        entry = NaiveEntry(self.term, len(self.log) + 1, command)
        self.log.append(entry)
        out.persist.append(EntryRecord(entry))
        if self.opts.replicate:
            for peer in self.config.peers:
                out.send(peer, Append(self.term, [entry]))
        if command.op == "order":
            out.send(
                "broker",
                BrokerWrite(
                    token=self.term,
                    node=self.me,
                    seq=entry.seq,
                    request_id=command.request_id,
                    order=command.order,
                ),
            )
        out.committed.append(Committed(entry.seq, entry.term, command, reply=True))
        return out

    # -- roles --------------------------------------------------------------------------

    def _become_leader(self, now: float, out: Ready, how: str) -> None:
        self.role = "leader"
        self.leader = self.me
        out.event(ev.BECAME_LEADER, term=self.term, how=how)
        self._broadcast_heartbeat(now, out)

    def _broadcast_heartbeat(self, now: float, out: Ready) -> None:
        for peer in self.config.peers:
            out.send(peer, Heartbeat(self.term, len(self.log)))
        self.next_heartbeat = now + self.opts.heartbeat_interval

    def status(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "term": self.term,
            "leader": self.leader,
            "commit_index": len(self.log),
            "log": len(self.log),
            "lease_expiry": None,
            "entries": [[e.seq, e.term, e.command.request_id] for e in self.log[-8:]],
            "dropped": self.dropped,
        }
