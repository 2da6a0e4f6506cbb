"""PBFT's wire messages, its durable WAL records, and `well_formed` checks.

Every type is a frozen, tagged msgspec Struct. Each peer message names its `sender` and
ends with `sig`, an HMAC by the sender's key (auth.py) over the first `SIGNED` fields:
what a field not covered carries is bound by a covered digest instead (a pre-prepare's
command by `digest`, a state image by its checkpoint digest), so signing stays cheap.
Requests are referenced by digest (sha256 of the encoded Command) in prepares and commits;
the null request (paper 4.4, filling gaps in a new view) has the empty digest.

Certificates are made of the original signed messages, so a receiver checks each one
against its own sender's key and nobody can assemble a certificate others did not sign.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

import msgspec

from protocols.base import Command

NULL_DIGEST = b""  # the null request: executes nothing
DIGEST_SIZE = 32
SIG_SIZE = 32

_encode = msgspec.msgpack.encode


MAX_BATCH = 1024  # requests one pre-prepare may carry


def command_digest(command: Command | None, batch: tuple[Command, ...] = ()) -> bytes:
    """The digest requests are known by in prepares, commits and certificates: of one
    request, or of a batch (`command` first, then `batch`), sha256 over them all."""
    if command is None:
        return NULL_DIGEST
    if batch:
        return hashlib.sha256(_encode((command, *batch))).digest()
    return hashlib.sha256(_encode(command)).digest()


def state_digest(index: int, image: bytes) -> bytes:
    """A checkpoint's digest: of the state machine image and the number of requests
    executed to build it (Committed.index goes on from there after a state transfer)."""
    return hashlib.sha256(index.to_bytes(8, "big") + image).digest()


# -- peer messages ----------------------------------------------------------------------


class PrePrepare(msgspec.Struct, frozen=True, tag=True):
    """The primary of `view` assigns `seq` to the request with `digest` (paper 4.2).
    Also a WAL record: a replica remembers the pre-prepare it accepted for (view, seq)."""

    SIGNED: ClassVar[int] = 4
    view: int
    seq: int
    digest: bytes
    sender: str
    command: Command | None = None  # None: the null request
    # More requests at this sequence number (the primary batches under load), executed
    # after `command` in this order; covered by `digest` with it.
    batch: tuple[Command, ...] = ()
    sig: bytes = b""


def requests_of(pp: PrePrepare) -> tuple[Command, ...]:
    """The requests a pre-prepare orders, in execution order (none: the null request)."""
    return () if pp.command is None else (pp.command, *pp.batch)


class Prepare(msgspec.Struct, frozen=True, tag=True):
    SIGNED: ClassVar[int] = 4
    view: int
    seq: int
    digest: bytes
    sender: str
    sig: bytes = b""


class Commit(msgspec.Struct, frozen=True, tag=True):
    SIGNED: ClassVar[int] = 4
    view: int
    seq: int
    digest: bytes
    sender: str
    sig: bytes = b""


class Checkpoint(msgspec.Struct, frozen=True, tag=True):
    """The sender executed up to `seq`; `digest` is state_digest of its state machine
    image and of the number of requests executed."""

    SIGNED: ClassVar[int] = 3
    seq: int
    digest: bytes
    sender: str
    sig: bytes = b""


class PreparedCert(msgspec.Struct, frozen=True, tag=True):
    """A pre-prepare and 2f prepares from distinct backups matching it (paper 4.2).
    Also a WAL record: what a view change must carry survives a crash."""

    pre_prepare: PrePrepare
    prepares: tuple[Prepare, ...]


class ViewChange(msgspec.Struct, frozen=True, tag=True):
    """The sender moves to `view` (paper 4.4): its last stable checkpoint with the 2f+1
    signed checkpoint messages proving it, and the prepared certificates above it."""

    SIGNED: ClassVar[int] = 6
    view: int
    stable_seq: int
    stable_digest: bytes
    proof: tuple[Checkpoint, ...]
    prepared: tuple[PreparedCert, ...]
    sender: str
    sig: bytes = b""


class NewView(msgspec.Struct, frozen=True, tag=True):
    """The new primary's 2f+1 view-changes and the pre-prepares they imply (paper 4.4);
    every backup recomputes `pre_prepares` from `view_changes` and compares."""

    SIGNED: ClassVar[int] = 4
    view: int
    view_changes: tuple[ViewChange, ...]
    pre_prepares: tuple[PrePrepare, ...]
    sender: str
    sig: bytes = b""


class CheckpointProof(msgspec.Struct, frozen=True, tag=True):
    """2f+1 signed checkpoint messages for `seq`, forwarded to a replica still asking
    about an older checkpoint (it lost the messages that made `seq` stable)."""

    SIGNED: ClassVar[int] = 3
    seq: int
    checkpoints: tuple[Checkpoint, ...]
    sender: str
    sig: bytes = b""


class FetchState(msgspec.Struct, frozen=True, tag=True):
    """State transfer: "send me the image of checkpoint `seq` (or a newer stable one)"."""

    SIGNED: ClassVar[int] = 2
    seq: int
    sender: str
    sig: bytes = b""


class StateReply(msgspec.Struct, frozen=True, tag=True):
    """A checkpoint image with the 2f+1 checkpoint messages proving its state_digest."""

    SIGNED: ClassVar[int] = 3
    seq: int
    digest: bytes
    sender: str
    data: bytes = b""
    proof: tuple[Checkpoint, ...] = ()
    index: int = 0  # requests executed up to `seq`: `digest` covers it (state_digest)
    sig: bytes = b""


class FetchCommitted(msgspec.Struct, frozen=True, tag=True):
    """ "I miss decisions from `from_seq` on": a replica that lost commits asks its peers."""

    SIGNED: ClassVar[int] = 2
    from_seq: int
    sender: str
    sig: bytes = b""


class CommitProof(msgspec.Struct, frozen=True, tag=True):
    """A decided slot: its pre-prepare and 2f+1 signed commits matching it. 2f+1 commits
    mean at least f+1 correct replicas prepared it, so the decision is final."""

    SIGNED: ClassVar[int] = 3
    pre_prepare: PrePrepare
    commits: tuple[Commit, ...]
    sender: str
    sig: bytes = b""


MESSAGES: tuple[type[msgspec.Struct], ...] = (
    PrePrepare,
    Prepare,
    Commit,
    Checkpoint,
    ViewChange,
    NewView,
    CheckpointProof,
    FetchState,
    StateReply,
    FetchCommitted,
    CommitProof,
)


# -- durable records (WAL), replayed in order by start() --------------------------------


class ViewRecord(msgspec.Struct, frozen=True, tag=True):
    """The view this replica is in; `active` False while it changes to it."""

    view: int
    active: bool


class Decided(msgspec.Struct, frozen=True, tag=True):
    """The slot of `pre_prepare.seq` is committed with this request: execute it again
    after a restart (the state machine starts empty)."""

    pre_prepare: PrePrepare


class StableCheckpoint(msgspec.Struct, frozen=True, tag=True):
    """The last stable checkpoint: its proof and the state machine image it certifies."""

    seq: int
    digest: bytes
    proof: tuple[Checkpoint, ...]
    image: bytes
    index: int = 0  # requests executed up to `seq` (state_digest)


RECORDS: tuple[type[msgspec.Struct], ...] = (
    ViewRecord,
    PrePrepare,
    PreparedCert,
    Decided,
    StableCheckpoint,
)


# -- well-formedness -------------------------------------------------------------------


def _digest_ok(d: bytes, null_ok: bool = True) -> bool:
    return len(d) == DIGEST_SIZE or (null_ok and d == NULL_DIGEST)


def well_formed_pre_prepare(m: PrePrepare) -> bool:
    if len(m.batch) >= MAX_BATCH or (m.batch and m.command is None):
        return False
    return m.view >= 0 and m.seq >= 1 and m.digest == command_digest(m.command, m.batch)


def _vote_ok(m: Prepare | Commit) -> bool:
    return m.view >= 0 and m.seq >= 1 and _digest_ok(m.digest)


def well_formed(msg: msgspec.Struct) -> bool:
    """False for a message no correct PBFT replica could send (negative numbers, digests
    of the wrong size, a pre-prepare whose digest is not its command's); such input is
    dropped and counted. Signatures and certificates are checked by the core."""
    sig = getattr(msg, "sig", None)
    if not isinstance(sig, bytes) or len(sig) != SIG_SIZE:
        return False
    if isinstance(msg, PrePrepare):
        return well_formed_pre_prepare(msg)
    if isinstance(msg, (Prepare, Commit)):
        return _vote_ok(msg)
    if isinstance(msg, Checkpoint):
        return msg.seq >= 1 and _digest_ok(msg.digest, null_ok=False)
    if isinstance(msg, ViewChange):
        if msg.view < 1 or msg.stable_seq < 0:
            return False
        if msg.stable_seq == 0:
            return not msg.proof and msg.stable_digest == NULL_DIGEST
        return _digest_ok(msg.stable_digest, null_ok=False)
    if isinstance(msg, NewView):
        return msg.view >= 1 and all(p.view == msg.view for p in msg.pre_prepares)
    if isinstance(msg, CheckpointProof):
        return msg.seq >= 1
    if isinstance(msg, FetchState):
        return msg.seq >= 1
    if isinstance(msg, StateReply):
        return msg.seq >= 1 and msg.index >= 0 and _digest_ok(msg.digest, null_ok=False)
    if isinstance(msg, FetchCommitted):
        return msg.from_seq >= 1
    if isinstance(msg, CommitProof):
        return well_formed_pre_prepare(msg.pre_prepare)
    return False
