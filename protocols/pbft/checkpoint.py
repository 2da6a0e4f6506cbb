"""Checkpoints, watermarks, garbage collection and state transfer (paper 4.3, 5.3.2).

Every `checkpoint_interval` sequence numbers a replica pauses execution and asks the
runtime for a state machine image (`Ready.want_snapshot`, in the very batch whose
committed list ends at the checkpoint's number, so the image is exactly the state there).
Committed.term is always 0, so correct replicas hold byte-identical images and the
checkpoint digest is sha256 of the image and of the number of requests executed (what
Committed.index goes on from after a state transfer). The replica signs CHECKPOINT(seq, digest) to
everyone; with 2f+1 matching ones the checkpoint is stable: the low watermark moves to it,
slots at or below it are dropped, and the WAL is compacted to the replica's complete
durable state (view, the stable checkpoint with its proof and image, the live slots).

A replica that learns of a stable checkpoint above what it executed (2f+1 signed
checkpoint messages, directly, forwarded as a CheckpointProof, or inside a NEW-VIEW) and
cannot reach it by executing what it already has fetches the image from a replica that
signed it, checks the image's digest against the proof and restores it (`Ready.restore`).
Answers that do not match are dropped and counted ("bad_state").

`Checkpoints` is a mixin of PbftProtocol: it owns the checkpoint state
(`_init_checkpoints`) and declares what it uses of the core's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from protocols.base import Command, NodeConfig, Ready, SnapshotImage
from protocols.pbft.auth import Signer
from protocols.pbft.log import Log
from protocols.pbft.messages import (
    NULL_DIGEST,
    Checkpoint,
    CheckpointProof,
    FetchState,
    StableCheckpoint,
    StateReply,
    state_digest,
)
from protocols.pbft.options import Options
from protocols.pbft.viewchange import Verify, valid_checkpoint_proof

# Checkpoint messages kept per sender above the stable one: enough for the window, and a
# faulty replica cannot make us hold more.
MAX_VOTES_PER_SENDER = 8


class Checkpoints:
    """The checkpoint half of PbftProtocol."""

    # State owned by PbftProtocol (core.py) and the ViewChanges mixin (viewchange.py).
    me: str
    config: NodeConfig
    quorum: int
    opts: Options
    signer: Signer
    verify_cert: Verify
    log: Log
    pending: dict[str, tuple[Command, float]]
    last_exec: int
    exec_index: int
    commit_index: int
    awaiting_snapshot: int | None
    active: bool
    vc_deadline: float
    now: float
    out: Ready

    if TYPE_CHECKING:  # provided by PbftProtocol

        def _drop(self, reason: str) -> None: ...
        def _broadcast(self, msg: Any) -> None: ...
        def _assign(self) -> None: ...
        def _execute(self) -> None: ...
        def _fetch_committed(self) -> None: ...
        def durable_state(self) -> list[msgspec.Struct]: ...

    def _init_checkpoints(self) -> None:
        self.stable_seq = 0
        self.stable_digest = NULL_DIGEST
        self.stable_proof: tuple[Checkpoint, ...] = ()
        self.stable_image: bytes | None = None
        self.stable_index = 0  # requests executed up to the stable checkpoint
        self.stable_seen: set[str] = set()
        # seq -> (digest, image, requests executed up to seq)
        self.own_checkpoints: dict[int, tuple[bytes, bytes, int]] = {}
        self.last_checkpoint_msg: Checkpoint | None = None
        self.ckpt_votes: dict[int, dict[str, Checkpoint]] = {}
        self.target: tuple[int, bytes, tuple[Checkpoint, ...]] | None = None  # to fetch
        self.fetch_tries = 0
        self.fetch_deadline = float("inf")  # node clock: ask for the target's state then

    def _take_checkpoint(self, seq: int, data: bytes, index: int) -> None:
        digest = state_digest(index, data)
        msg = self.signer.sign(Checkpoint(seq, digest, self.me))
        self.own_checkpoints[seq] = (digest, data, index)
        self.last_checkpoint_msg = msg
        self.ckpt_votes.setdefault(seq, {})[self.me] = msg
        self._broadcast(msg)
        self._check_stable(seq)

    def _on_checkpoint(self, src: str, m: Checkpoint) -> None:
        if m.seq <= self.stable_seq:
            # A replica still collecting votes for a checkpoint we hold stable (or an
            # older one) re-sent its own: forward the proof of ours, once per sender.
            if self.stable_seq > 0 and (m.seq < self.stable_seq or src in self.stable_seen):
                proof = CheckpointProof(self.stable_seq, self.stable_proof, self.me)
                self.out.send(src, self.signer.sign(proof))
            self.stable_seen.add(src)
            return
        self._add_checkpoint_vote(m)
        self._check_stable(m.seq)

    def _add_checkpoint_vote(self, m: Checkpoint) -> None:
        self.ckpt_votes.setdefault(m.seq, {})[m.sender] = m
        mine = sorted(s for s, v in self.ckpt_votes.items() if m.sender in v)
        for seq in mine[:-MAX_VOTES_PER_SENDER]:
            del self.ckpt_votes[seq][m.sender]

    def _on_checkpoint_proof(self, src: str, m: CheckpointProof) -> None:
        if m.seq <= self.stable_seq or not m.checkpoints:
            return
        digest = m.checkpoints[0].digest
        if not valid_checkpoint_proof(self.verify_cert, self.quorum, m.seq, digest, m.checkpoints):
            self._drop("bad_checkpoint_proof")
            return
        self._proven_checkpoint(m.seq, digest, m.checkpoints)

    def _check_stable(self, seq: int) -> None:
        if seq <= self.stable_seq:
            return
        by_digest: dict[bytes, list[Checkpoint]] = {}
        for v in self.ckpt_votes.get(seq, {}).values():
            by_digest.setdefault(v.digest, []).append(v)
        for digest, votes in by_digest.items():
            if len(votes) >= self.quorum:
                proof = tuple(sorted(votes, key=lambda c: c.sender)[: self.quorum])
                self._proven_checkpoint(seq, digest, proof)
                return

    def _proven_checkpoint(self, seq: int, digest: bytes, proof: tuple[Checkpoint, ...]) -> None:
        """2f+1 replicas vouch for the state at `seq`: make it our stable checkpoint if our
        own state there matches, or remember it to fetch if we are behind."""
        if seq <= self.stable_seq:
            return
        own = self.own_checkpoints.get(seq)
        if own is not None:
            if own[0] == digest:
                self._make_stable(seq, digest, proof, own[1], own[2])
            else:
                self._drop("checkpoint_mismatch")  # our state differs from 2f+1 others
            return
        if seq <= self.last_exec:
            return  # we passed it without an image (restored beyond it): nothing to do
        if self.target is None or seq > self.target[0]:
            self.target = (seq, digest, proof)
            if self.fetch_deadline == float("inf"):
                # Most replicas that are a little behind get there by executing; give them
                # a moment before moving a whole image.
                self.fetch_deadline = self.now + self.opts.view_change_timeout / 4

    def _make_stable(
        self, seq: int, digest: bytes, proof: tuple[Checkpoint, ...], image: bytes, index: int
    ) -> None:
        self.stable_seq = seq
        self.stable_digest = digest
        self.stable_proof = proof
        self.stable_image = image
        self.stable_index = index
        self.stable_seen = {c.sender for c in proof}
        self.log.collect_garbage(seq)
        self.ckpt_votes = {s: v for s, v in self.ckpt_votes.items() if s > seq}
        self.own_checkpoints = {s: v for s, v in self.own_checkpoints.items() if s > seq}
        if self.target is not None and self.target[0] <= seq:
            self.target = None
            self.fetch_deadline = float("inf")
        # The compaction is the whole durable state: what this batch persisted so far is
        # part of it, and compact_to drops it.
        self.out.compact_to(self.durable_state())
        self.out.durable_floor(index, self.config.replicas)
        self.out.event("pbft.checkpoint", seq=seq, digest=digest.hex()[:16])
        self._assign()  # the window moved: the primary may assign queued requests

    def _fetch_state(self) -> None:
        """Ask one replica that signed the proof for the image; another on the next try."""
        t = self.target
        if t is None or t[0] <= self.last_exec:
            self.target = None
            self.fetch_deadline = float("inf")
            return
        self.fetch_deadline = self.now + self.opts.view_change_timeout / 2
        if all(
            (s := self.log.get(q)) is not None and s.decided is not None
            for q in range(self.last_exec + 1, t[0] + 1)
        ):
            return  # everything up to it is decided: executing gets us there
        peers = [c.sender for c in t[2] if c.sender != self.me]
        peer = peers[self.fetch_tries % len(peers)]
        self.fetch_tries += 1
        self.out.send(peer, self.signer.sign(FetchState(t[0], self.me)))

    def _on_fetch_state(self, src: str, m: FetchState) -> None:
        if self.stable_image is not None and m.seq <= self.stable_seq:
            reply = StateReply(
                self.stable_seq,
                self.stable_digest,
                self.me,
                self.stable_image,
                self.stable_proof,
                self.stable_index,
            )
            self.out.send(src, self.signer.sign(reply))

    def _on_state_reply(self, src: str, m: StateReply) -> None:
        if m.seq <= self.last_exec or m.seq <= self.stable_seq:
            return  # we got there already
        if state_digest(m.index, m.data) != m.digest or not valid_checkpoint_proof(
            self.verify_cert, self.quorum, m.seq, m.digest, m.proof
        ):
            self._drop("bad_state")
            return
        self._restore(m.seq, m.digest, m.proof, m.data, m.index)

    def _restore(
        self, seq: int, digest: bytes, proof: tuple[Checkpoint, ...], data: bytes, index: int
    ) -> None:
        out = self.out
        # The image replaces everything up to seq: nothing decided below it may be applied
        # after it, and a snapshot asked for below it would be of the wrong state.
        out.committed = [c for c in out.committed if c.index > index]
        if self.awaiting_snapshot is not None and self.awaiting_snapshot <= seq:
            self.awaiting_snapshot = None
            out.want_snapshot = False
        out.restore = SnapshotImage(index, 0, data)
        self.last_exec = seq
        self.exec_index = index
        self.commit_index = max(self.commit_index, seq)
        # Requests inside the image are executed without our knowing which: stop waiting
        # for any (the others answer their clients; a retry is answered from the session
        # table). The primary's queue is kept: it still owes those requests a number.
        self.pending.clear()
        if self.active:
            self.vc_deadline = float("inf")
        self.own_checkpoints[seq] = (digest, data, index)
        self.out.event("pbft.state_transfer", seq=seq, digest=digest.hex()[:16])
        self._make_stable(seq, digest, proof, data, index)
        self._execute()
        # Decisions after the checkpoint were likely made while we were away.
        self._fetch_committed()

    def _stable_record(self) -> StableCheckpoint | None:
        if self.stable_seq == 0 or self.stable_image is None:
            return None
        return StableCheckpoint(
            self.stable_seq, self.stable_digest, self.stable_proof, self.stable_image,
            self.stable_index,
        )
