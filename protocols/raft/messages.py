"""Raft's wire messages (request/response pairs) and its durable WAL records.

Every type is a frozen, tagged msgspec Struct: the codec decodes a union of them without
guessing, and equality makes test assertions one line. Field names follow the paper's
Figure 2 where it has one.
"""

from __future__ import annotations

import msgspec

from protocols.base import Command


class Entry(msgspec.Struct, frozen=True):
    """One log entry. `command` is None for the empty entry a new leader appends (section 8)."""

    term: int
    index: int
    command: Command | None = None


# -- peer messages ----------------------------------------------------------------------


class RequestVote(msgspec.Struct, frozen=True, tag=True):
    """A vote request (section 5.2), or with `pre_vote` a question that changes nothing:
    "would you vote for me in `term`?" (thesis section 9.6)."""

    term: int
    last_index: int
    last_term: int
    pre_vote: bool = False


class VoteResponse(msgspec.Struct, frozen=True, tag=True):
    term: int
    granted: bool
    pre_vote: bool = False


class AppendEntries(msgspec.Struct, frozen=True, tag=True):
    """Entries after (prev_index, prev_term), and the leader's commit index (section 5.3).

    `round` is the leader's latest heartbeat round; echoing it back confirms leadership as
    of that round's send time (ReadIndex and leases)."""

    term: int
    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    round: int = 0


class AppendResponse(msgspec.Struct, frozen=True, tag=True):
    """Success: the follower's log matches the leader's up to `index`.

    Rejection: `index` is the rejected prev_index; `hint_index`/`hint_term` are the
    follower's last entry at or below it whose term is <= prev_term, so the leader skips a
    whole conflicting term per round trip (the fast backup at the end of section 5.3).
    `lost`: the follower is repairing a corrupt WAL, so it may hold less than it once
    acknowledged, and what the leader knew of its log is void."""

    term: int
    success: bool
    index: int
    hint_index: int = 0
    hint_term: int = 0
    round: int = 0
    lost: bool = False


class Heartbeat(msgspec.Struct, frozen=True, tag=True):
    """Leadership and commit, no entries. `commit` is capped at the follower's known match,
    since the follower's log may still diverge above it."""

    term: int
    commit: int
    round: int


class HeartbeatResponse(msgspec.Struct, frozen=True, tag=True):
    term: int
    round: int


class InstallSnapshot(msgspec.Struct, frozen=True, tag=True):
    """The leader's state machine image for a follower behind its compaction point
    (section 7). Answered with an AppendResponse."""

    term: int
    index: int
    snap_term: int
    data: bytes
    round: int = 0


MESSAGES: tuple[type[msgspec.Struct], ...] = (
    RequestVote,
    VoteResponse,
    AppendEntries,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
)


# -- durable records (WAL), replayed in order by start() --------------------------------


class HardState(msgspec.Struct, frozen=True, tag=True):
    """Figure 2's persistent state besides the log: currentTerm and votedFor."""

    term: int
    vote: str | None = None


class LogEntries(msgspec.Struct, frozen=True, tag=True):
    """Entries appended at entries[0].index. Everything the log held from that index on is
    truncated first: the truncation and the append are one record, so no crash can
    persist one without the other."""

    entries: tuple[Entry, ...]


class SnapshotRecord(msgspec.Struct, frozen=True, tag=True):
    """The state machine image at `index` (term `term`); entries up to it are discarded."""

    index: int
    term: int
    data: bytes


RECORDS: tuple[type[msgspec.Struct], ...] = (HardState, LogEntries, SnapshotRecord)


def well_formed(msg: msgspec.Struct) -> bool:
    """False for a peer message no correct Raft node could send (negative or impossible
    indices and terms, entries out of order); such input is dropped and counted."""
    if getattr(msg, "term", -1) < 0 or getattr(msg, "round", 0) < 0:
        return False
    if isinstance(msg, RequestVote):
        # Index 0 is the empty prefix (term 0); every real entry has a term of at least 1.
        return (
            msg.last_index >= 0
            and (msg.last_index == 0) == (msg.last_term == 0)
            and (msg.last_term <= msg.term)
        )
    if isinstance(msg, AppendEntries):
        if msg.prev_index < 0 or not 0 <= msg.prev_term <= msg.term or msg.commit < 0:
            return False
        if (msg.prev_index == 0) != (msg.prev_term == 0):
            return False
        index, term = msg.prev_index, msg.prev_term
        for e in msg.entries:
            # Contiguous, terms never decreasing, none from a term after the sender's.
            if e.index != index + 1 or not max(term, 1) <= e.term <= msg.term:
                return False
            index, term = e.index, e.term
        return True
    if isinstance(msg, AppendResponse):
        return msg.index >= 0 and msg.hint_index >= 0 and msg.hint_term >= 0
    if isinstance(msg, Heartbeat):
        return msg.commit >= 0
    if isinstance(msg, InstallSnapshot):
        return msg.index > 0 and 0 < msg.snap_term <= msg.term
    return isinstance(msg, (VoteResponse, HeartbeatResponse))
