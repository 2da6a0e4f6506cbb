"""The misbehaviour wrapper: what a byzantine PBFT replica sends instead of the truth.

The replica keeps running the protocol honestly inside; `Byzantine.rewrite` changes what
leaves it (the Ready's messages and client answers) and `Byzantine.incoming` lets it react
to what arrives. It signs only with the replica's own key (auth.Signer refuses any other
sender), so it can lie about itself but never forge another replica's messages.

Modes:

- silent: sends nothing at all (no peer messages, no client replies: Committed.reply is
  cleared), while the replica keeps executing what it learns.
- equivocate: as primary, each pre-prepare is replaced by a DIFFERENT one per backup:
  backup j (in replica order) gets candidate (seq + j) mod L of its L candidates (the
  requests it holds that are not executed, then the null request), so no two backups get
  the same one while there are enough candidates; backups beyond L get the null request.
  In any role it "agrees with everyone": for each prepare or commit a peer sends it for
  (view, seq, digest) it answers that peer with a matching prepare and commit. One such
  replica out of 3f+1 cannot break safety (honest backups time out into a view change);
  two out of four make two honest replicas commit different requests at one number.
- forge: claims results it did not compute: its prepares, commits and checkpoints carry
  wrong digests (re-signed by itself), its state transfer answers carry a wrong image, and
  its client replies a made-up value (Committed.reply cleared, its own ClientReply sent).
  For each number it sees the primary assign (or assigns itself) it makes up a commit
  certificate of another request at that number, the pre-prepare and the commits "from"
  the others signed with nothing (it has only its own key), and sends it to every other
  replica in an envelope it signs itself: one hop ahead of the real commits, taken as
  proof by a replica that does not verify what a certificate holds.
- delay-primary: as primary, holds each pre-prepare back for 0.8 x view_change_timeout,
  just under the backups' timer, so no view change triggers but every request is slow;
  as a backup it is honest. Held messages are sent when honesty is restored.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Protocol

import msgspec

from protocols.base import ClientReply, Command, Ready
from protocols.pbft.auth import Signer
from protocols.pbft.messages import (
    Checkpoint,
    Commit,
    CommitProof,
    Prepare,
    PrePrepare,
    StateReply,
    command_digest,
)
from protocols.pbft.options import Options

MODES = ("silent", "equivocate", "forge", "delay-primary")
DELAY_FRACTION = 0.8  # of view_change_timeout: just under the backups' timer
MAX_ECHOED = 50_000  # (peer, view, seq, digest) an equivocator remembers answering
MAX_FORGED = 50_000  # (view, seq) a forger remembers having made a certificate up for
NO_SIG = b"\0" * 32  # what a forger puts where another replica's signature belongs


class Replica(Protocol):
    """What the wrapper reads of the replica it lies for (PbftProtocol has it all)."""

    me: str
    replicas: tuple[str, ...]
    view: int
    opts: Options
    signer: Signer
    pending: dict[str, tuple[Command, float]]  # requests held, not executed

    def primary(self, view: int) -> str: ...


class Byzantine:
    def __init__(self, proto: Replica) -> None:
        self.p = proto
        self.mode: str | None = None
        self.held: list[tuple[float, str, msgspec.Struct]] = []  # delay-primary
        # The earliest release time in `held` (None: nothing held), kept as it changes:
        # every input's batch asks for it (`deadline`), and held grows by the dozen.
        self.held_first: float | None = None
        self.echoed: set[tuple[str, int, int, bytes]] = set()  # equivocate
        self.forged: set[tuple[int, int]] = set()  # forge: certificates made up
        self.released: list[tuple[str, msgspec.Struct]] = []  # held, now due

    def set_mode(self, mode: str | None, out: Ready) -> None:
        self.mode = mode
        if mode != "delay-primary":
            for _, dst, msg in self.held:
                out.send(dst, msg)  # honest (or another lie) again: let them go
            self.held = []
            self.held_first = None
        self.echoed.clear()

    def deadline(self) -> float | None:
        return self.held_first

    def tick(self, now: float, out: Ready) -> None:
        due = [h for h in self.held if h[0] <= now]
        if due:
            self.held = [h for h in self.held if h[0] > now]
            self.held_first = min((t for t, _, _ in self.held), default=None)
            # Sent after `rewrite`, which would otherwise hold them all over again.
            self.released.extend((dst, msg) for _, dst, msg in due)

    # -- what arrives ---------------------------------------------------------------------

    def incoming(self, src: str, msg: Any, out: Ready) -> None:
        if self.mode == "forge" and isinstance(msg, PrePrepare):
            self._forge_proof(msg, out)
            return
        if self.mode != "equivocate" or not isinstance(msg, (Prepare, Commit)):
            return
        key = (src, msg.view, msg.seq, msg.digest)
        if key in self.echoed:
            return
        if len(self.echoed) >= MAX_ECHOED:
            self.echoed.clear()
        self.echoed.add(key)
        sign, me = self.p.signer.sign, self.p.me
        out.send(src, sign(Prepare(msg.view, msg.seq, msg.digest, me)))
        out.send(src, sign(Commit(msg.view, msg.seq, msg.digest, me)))

    # -- what leaves ------------------------------------------------------------------------

    def rewrite(self, now: float, out: Ready) -> None:
        self._lie(now, out)
        if self.released:
            out.messages.extend(self.released)
            self.released = []

    def _lie(self, now: float, out: Ready) -> None:
        if self.mode is None:
            return
        if self.mode == "silent":
            out.messages = []
            out.committed = [dataclasses.replace(c, reply=False) for c in out.committed]
        elif self.mode == "forge":
            self._forge(out)
        elif self.mode == "equivocate":
            self._equivocate(out)
        elif self.mode == "delay-primary":
            keep = []
            until = now + DELAY_FRACTION * self.p.opts.view_change_timeout
            for dst, msg in out.messages:
                if isinstance(msg, PrePrepare) and msg.sender == self.p.me:
                    self.held.append((until, dst, msg))
                    if self.held_first is None or until < self.held_first:
                        self.held_first = until
                else:
                    keep.append((dst, msg))
            out.messages = keep

    def _forge(self, out: Ready) -> None:
        sign, me = self.p.signer.sign, self.p.me
        forged: dict[int, msgspec.Struct] = {}  # one forgery per broadcast message

        def lie(msg: msgspec.Struct) -> msgspec.Struct:
            if isinstance(msg, (Prepare, Commit, Checkpoint)):
                wrong = hashlib.sha256(b"forged" + msg.digest).digest()
                return sign(msgspec.structs.replace(msg, digest=wrong))
            if isinstance(msg, StateReply):
                return sign(msgspec.structs.replace(msg, data=b"forged state"))
            if isinstance(msg, ClientReply):
                return msgspec.structs.replace(msg, value=f"forged-by-{me}")
            return msg

        messages = []
        proofs = Ready()
        for dst, msg in out.messages:
            if isinstance(msg, PrePrepare) and msg.sender == me:
                self._forge_proof(msg, proofs)  # as primary: of its own numbers too
            if id(msg) not in forged:
                forged[id(msg)] = lie(msg)
            messages.append((dst, forged[id(msg)]))
        messages.extend(proofs.messages)
        committed = []
        for c in out.committed:
            if c.reply:
                reply = ClientReply(
                    request_id=c.command.request_id,
                    status="ok",
                    node=me,
                    term=0,
                    seq=c.index,
                    value=f"forged-by-{me}",
                )
                messages.append((c.command.client, reply))
                c = dataclasses.replace(c, reply=False)
            committed.append(c)
        out.messages = messages
        out.committed = committed

    def _forge_proof(self, pp: PrePrepare, out: Ready) -> None:
        """A made-up commit certificate of another request at `pp`'s number, to the rest."""
        p = self.p
        if (pp.view, pp.seq) in self.forged:
            return
        if len(self.forged) >= MAX_FORGED:
            self.forged.clear()
        self.forged.add((pp.view, pp.seq))
        base = pp.command
        cmd = Command(request_id=f"forged-{p.me}-{pp.view}-{pp.seq}",
                      client=base.client if base else "c0", op="put",
                      key=base.key if base and base.key else "x",
                      value=f"forged-by-{p.me}")  # fmt: skip
        fake = PrePrepare(pp.view, pp.seq, command_digest(cmd), pp.sender, cmd)
        # Its own pre-prepare it can sign; the primary's and the others' commits it cannot.
        fake = p.signer.sign(fake) if pp.sender == p.me else msgspec.structs.replace(
            fake, sig=NO_SIG)  # fmt: skip
        commits = tuple(
            p.signer.sign(Commit(pp.view, pp.seq, fake.digest, r)) if r == p.me
            else Commit(pp.view, pp.seq, fake.digest, r, sig=NO_SIG)
            for r in p.replicas
        )  # fmt: skip
        proof = p.signer.sign(CommitProof(fake, commits, p.me))
        for r in p.replicas:
            if r not in (p.me, pp.sender):
                out.send(r, proof)

    def _equivocate(self, out: Ready) -> None:
        p = self.p
        backups = [r for r in p.replicas if r != p.primary(p.view)]
        # The requests it holds and has not executed, then the null request.
        candidates: list[Command | None] = [cmd for cmd, _ in p.pending.values()]
        candidates.append(None)
        n = len(candidates)
        messages = []
        for dst, msg in out.messages:
            if isinstance(msg, PrePrepare) and msg.sender == p.me and dst in backups:
                j = backups.index(dst)
                cmd = candidates[(msg.seq + j) % n] if j < n else None
                msg = p.signer.sign(PrePrepare(msg.view, msg.seq, command_digest(cmd), p.me, cmd))
            messages.append((dst, msg))
        out.messages = messages
