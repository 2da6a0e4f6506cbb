"""View changes (paper section 4.4): VIEW-CHANGE, NEW-VIEW, their checks, and the timers.

A replica that waited too long for a request to execute moves to view v+1: it stops
taking part in view v and sends a VIEW-CHANGE with its last stable checkpoint (and the
2f+1 checkpoint messages proving it) and every prepared certificate above it. The primary
of v+1 collects 2f+1 of them and sends NEW-VIEW: those view-changes plus one pre-prepare
per sequence number between the highest stable checkpoint among them (min-s) and the
highest prepared certificate (max-s): the request of the highest-view certificate for that
number, or the null request where there is none. Every backup checks each embedded
message against its own sender's key and recomputes the pre-prepares, so a faulty primary
can neither drop a prepared request nor invent one.

Liveness (4.5.2): the timer for view v+1 starts only once 2f+1 view-changes for v+1 are in
(a lone replica that lost some messages does not run ahead of everyone), expires after a
timeout doubled per consecutive view change, and then the replica tries v+2 (cascading
view changes past faulty primaries). A replica joins a view change as soon as f+1 others
asked for later views (at least one of them correct). A replica still asking for a view
others are already in gets the NEW-VIEW again, and view changes are re-sent periodically,
which is the retransmission the paper leaves to the transport.

`ViewChanges` is a mixin of PbftProtocol: it owns the view state (`_init_views`) and
declares what it uses of the core's; the check functions are plain functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from protocols.base import Command, Ready
from protocols.base import events as ev
from protocols.pbft.auth import Signer
from protocols.pbft.log import Log, Slot
from protocols.pbft.messages import (
    Checkpoint,
    NewView,
    PreparedCert,
    PrePrepare,
    ViewChange,
    ViewRecord,
    command_digest,
    well_formed_pre_prepare,
)
from protocols.pbft.options import Options

Verify = Callable[[Any], bool]


def valid_checkpoint_proof(
    verify: Verify, quorum: int, seq: int, digest: bytes, proof: Iterable[Checkpoint]
) -> bool:
    """2f+1 checkpoint messages from distinct replicas, each signed by its sender, all
    for (seq, digest)."""
    senders: set[str] = set()
    for c in proof:
        if c.seq != seq or c.digest != digest or c.sender in senders or not verify(c):
            return False
        senders.add(c.sender)
    return len(senders) >= quorum


def valid_prepared_cert(
    verify: Verify,
    primary: Callable[[int], str],
    needed: int,
    cert: PreparedCert,
    below_view: int,
) -> bool:
    """A pre-prepare signed by the primary of its view (earlier than `below_view`) and
    `needed` (2f: a quorum with the pre-prepare) prepares matching it from distinct
    backups, each signed by its sender."""
    pp = cert.pre_prepare
    if pp.view >= below_view or pp.sender != primary(pp.view):
        return False
    if not well_formed_pre_prepare(pp) or not verify(pp):
        return False
    senders: set[str] = set()
    for p in cert.prepares:
        if (p.view, p.seq, p.digest) != (pp.view, pp.seq, pp.digest):
            return False
        if p.sender == pp.sender or p.sender in senders or not verify(p):
            return False
        senders.add(p.sender)
    return len(senders) >= needed


Requests = tuple["Command | None", tuple[Command, ...]]  # a pre-prepare's (command, batch)


def new_view_plan(
    vcs: Iterable[ViewChange], proofs: bool = True
) -> tuple[int, list[tuple[int, Requests]]]:
    """(min-s, [(seq, requests)] for min-s < seq <= max-s): what a NEW-VIEW must re-issue.
    For each number the requests (command, batch) of the highest-view prepared
    certificate, else the null request (None, ()). Without `proofs` (mutation
    "view-change-no-proof") the certificates are ignored: the new view re-issues nothing,
    and its primary gives the numbers above the checkpoint to whatever it holds, though a
    request prepared there may have committed somewhere."""
    vcs = list(vcs)
    min_s = max(vc.stable_seq for vc in vcs)
    best: dict[int, PrePrepare] = {}
    for vc in vcs if proofs else ():
        for cert in vc.prepared:
            pp = cert.pre_prepare
            if pp.seq <= min_s:
                continue
            held = best.get(pp.seq)
            # Two certificates of one view agree (quorum intersection); the tie-break by
            # digest only makes the choice a function of the set, not of its order.
            if held is None or (pp.view, pp.digest) > (held.view, held.digest):
                best[pp.seq] = pp
    max_s = max(best, default=min_s)
    plan = [
        (s, (best[s].command, best[s].batch) if s in best else (None, ()))
        for s in range(min_s + 1, max_s + 1)
    ]
    return min_s, plan


class ViewChanges:
    """The view-change half of PbftProtocol."""

    # State owned by PbftProtocol (core.py) and the Checkpoints mixin (checkpoint.py).
    me: str
    f: int
    quorum: int
    replica_set: frozenset[str]
    opts: Options
    signer: Signer
    verify_cert: Verify
    log: Log
    queue: dict[str, Command]
    assigned: dict[str, int]
    pending: dict[str, tuple[Command, float]]
    executed: dict[str, tuple[int, Command]]
    next_seq: int
    last_exec: int
    stable_seq: int
    stable_digest: bytes
    stable_proof: tuple[Checkpoint, ...]
    now: float
    out: Ready

    if TYPE_CHECKING:  # provided by PbftProtocol and the Checkpoints mixin

        def primary(self, view: int) -> str: ...
        def _timeout(self) -> float: ...
        def _drop(self, reason: str) -> None: ...
        def _broadcast(self, msg: Any) -> None: ...
        def _in_window(self, seq: int) -> bool: ...
        def _accept_pre_prepare(self, slot: Slot, pp: PrePrepare) -> None: ...
        def _check(self, slot: Slot) -> None: ...
        def _assign(self) -> None: ...
        def _on_pre_prepare(self, pp: PrePrepare) -> None: ...
        def _proven_checkpoint(
            self, seq: int, digest: bytes, proof: tuple[Checkpoint, ...]
        ) -> None: ...

    def _init_views(self) -> None:
        self.view = 0
        self.active = True  # False while changing to `view`
        self.last_active_view = 0  # the view we were last active in (for events)
        self.vc_here: dict[str, ViewChange] = {}  # view-changes for exactly our view
        self.vc_by_sender: dict[str, ViewChange] = {}  # the latest view-change of each
        self.own_vc: ViewChange | None = None
        self.new_view_msg: NewView | None = None  # the NEW-VIEW of the view we are in
        self.early: dict[tuple[int, int], PrePrepare] = {}  # for a view not entered yet
        self.seen_views: dict[str, int] = {}  # the highest view each peer showed us
        self.backoff = 0  # consecutive view changes without executing a request
        self.view_changes = 0
        # A request waited too long (active), or a view change took too long (changing):
        # move to the next view then. Node clock; inf when no timer runs.
        self.vc_deadline = float("inf")

    def _valid_view_change(self, vc: ViewChange) -> bool:
        if vc.stable_seq > 0 and not valid_checkpoint_proof(
            self.verify_cert, self.quorum, vc.stable_seq, vc.stable_digest, vc.proof
        ):
            return False
        seen: set[int] = set()
        high = vc.stable_seq + self.opts.window
        for cert in vc.prepared:
            seq = cert.pre_prepare.seq
            if seq in seen or not vc.stable_seq < seq <= high:
                return False
            seen.add(seq)
            if not valid_prepared_cert(
                self.verify_cert, self.primary, self.quorum - 1, cert, vc.view
            ):
                return False
        return True

    def _start_view_change(self, to: int, escalate: bool) -> None:
        """Leave the current view for `to` (> view): stop accepting its messages, tell
        everyone what we prepared and the checkpoint we stand on."""
        if to <= self.view:
            raise RuntimeError(f"view change from {self.view} to {to}")
        was = self.view
        if escalate:
            self.backoff += 1  # paper 4.5.2: double the timeout per consecutive view change
        self.view = to
        self.active = False
        self.view_changes += 1
        self.queue.clear()
        self.assigned.clear()
        self.new_view_msg = None
        # The paper starts this view's timer only once 2f+1 view-changes for it arrived.
        # Alone with fewer (the others moved on while we were cut off, or never will come
        # here), we would wait forever: give up on this view after twice the timeout, so
        # honest replicas scattered over views meet again in a later one.
        self.vc_deadline = self.now + 2 * self._timeout()
        self.out.persist.append(ViewRecord(to, False))
        self.own_vc = self._make_view_change(to)
        self.vc_by_sender[self.me] = self.own_vc
        self.vc_here = {}
        self._broadcast(self.own_vc)
        self.out.event("pbft.view_change", **{"from": was, "to": to})
        self._view_change_progress()

    def _make_view_change(self, to: int) -> ViewChange:
        certs = self.log.certs_above(self.stable_seq, self.stable_seq + self.opts.window)
        return self.signer.sign(
            ViewChange(
                view=to,
                stable_seq=self.stable_seq,
                stable_digest=self.stable_digest,
                proof=self.stable_proof,
                prepared=tuple(certs),
                sender=self.me,
            )
        )

    def _on_view_change(self, src: str, vc: ViewChange) -> None:
        if not self._valid_view_change(vc):
            self._drop("bad_view_change")
            return
        if vc.view < self.view or (vc.view == self.view and self.active):
            # The sender still asks for a view we are already past or in: it lost the
            # NEW-VIEW (or never got the messages that moved everyone on). Send it again.
            if self.active and self.new_view_msg is not None:
                self.out.send(src, self.new_view_msg)
            elif not self.active and vc.view < self.view:
                # We both change views, it to a lower one: it may never have had our
                # view-change for its view (lost while we were cut off), and we re-send only
                # our latest. Sending one for its view (we left it: we accept nothing below
                # ours anyway) lets it count us, time out there with us, and catch up.
                self.out.send(src, self._make_view_change(vc.view))
            return
        held = self.vc_by_sender.get(src)
        if held is None or vc.view >= held.view:
            self.vc_by_sender[src] = vc  # one per sender, the latest: bounded memory
        if vc.view == self.view:
            # Kept apart: a sender already asking for a later view may still send one for
            # ours (see above), and the NEW-VIEW for ours needs exactly those.
            self.vc_here[src] = vc
        if vc.view > self.view:
            # f+1 replicas (so at least one correct) want a later view: join the lowest
            # view that f+1 of them ask for at least, without waiting for our own timer.
            wanted = sorted(
                (
                    v.view
                    for s, v in self.vc_by_sender.items()
                    if s != self.me and v.view > self.view
                ),
                reverse=True,
            )
            if len(wanted) >= self.f + 1:
                self._start_view_change(wanted[self.f], escalate=False)
        else:
            self._view_change_progress()

    def _view_change_progress(self) -> None:
        """2f+1 view-changes for the view we change to: start its timer; as its primary,
        send NEW-VIEW."""
        if self.active:
            return
        here = {s: v for s, v in self.vc_by_sender.items() if v.view == self.view}
        here.update((s, v) for s, v in self.vc_here.items() if v.view == self.view)
        vcs = list(here.values())
        if len(vcs) < self.quorum:
            return
        self.vc_deadline = min(self.vc_deadline, self.now + self._timeout())
        if self.primary(self.view) == self.me and self.me in {v.sender for v in vcs}:
            self._send_new_view(vcs)

    def _send_new_view(self, vcs: list[ViewChange]) -> None:
        mine = [v for v in vcs if v.sender == self.me]
        others = sorted((v for v in vcs if v.sender != self.me), key=lambda v: v.sender)
        chosen = tuple((mine + others)[: self.quorum])
        _, plan = new_view_plan(chosen, self.opts.mutate != "view-change-no-proof")
        pps = tuple(
            self.signer.sign(
                PrePrepare(self.view, seq, command_digest(cmd, batch), self.me, cmd, batch)
            )
            for seq, (cmd, batch) in plan
        )
        nv = self.signer.sign(NewView(self.view, chosen, pps, self.me))
        self._broadcast(nv)
        self._enter_view(nv)

    def _on_new_view(self, src: str, nv: NewView) -> None:
        if nv.view < self.view or (nv.view == self.view and self.active):
            return  # stale or a repeat of the view we are in
        if nv.sender != self.primary(nv.view):
            self._drop("not_primary")
            return
        if not self._valid_new_view(nv):
            self._drop("bad_new_view")
            return
        self._enter_view(nv)

    def _valid_new_view(self, nv: NewView) -> bool:
        senders = {v.sender for v in nv.view_changes}
        if len(senders) != len(nv.view_changes) or len(senders) < self.quorum:
            return False
        for vc in nv.view_changes:
            if vc.view != nv.view or vc.sender not in self.replica_set:
                return False
            if not self.verify_cert(vc) or not self._valid_view_change(vc):
                return False
        _, plan = new_view_plan(nv.view_changes, self.opts.mutate != "view-change-no-proof")
        if len(plan) != len(nv.pre_prepares):
            return False
        for (seq, requests), pp in zip(plan, nv.pre_prepares, strict=True):
            if (pp.seq, (pp.command, pp.batch), pp.sender) != (seq, requests, nv.sender):
                return False
            if not well_formed_pre_prepare(pp) or not self.verify_cert(pp):
                return False
        return True

    def _enter_view(self, nv: NewView) -> None:
        was = self.last_active_view
        self.view = nv.view
        self.last_active_view = nv.view
        self.active = True
        self.new_view_msg = nv
        self.own_vc = None
        self.out.persist.append(ViewRecord(self.view, True))
        self.vc_by_sender = {s: v for s, v in self.vc_by_sender.items() if v.view > self.view}
        for slot in self.log.slots.values():
            slot.forget_views_below(self.view)
        # The checkpoint the new view starts from: adopt it, fetching its state if behind.
        top = max(nv.view_changes, key=lambda v: v.stable_seq)
        if top.stable_seq > self.stable_seq:
            self._proven_checkpoint(top.stable_seq, top.stable_digest, top.proof)
        self.assigned = {}
        self.queue = {}
        primary = self.primary(self.view)
        touched = []
        for pp in nv.pre_prepares:
            if not self._in_window(pp.seq):
                continue
            slot = self.log.slot(pp.seq)
            if slot.decided is not None and slot.decided.digest != pp.digest:
                self._drop("conflicts_decided")  # impossible with at most f faulty
                continue
            self._accept_pre_prepare(slot, pp)
            touched.append(slot)
        self.out.event("pbft.new_view", view=self.view, primary=primary, previous=was)
        if primary == self.me:
            self.out.event(ev.BECAME_LEADER, term=self.view, how="new_view")
            top_seq = max((pp.seq for pp in nv.pre_prepares), default=0)
            self.next_seq = max(top_seq, top.stable_seq, self.stable_seq, self.last_exec) + 1
            self.queue = {
                rid: cmd
                for rid, (cmd, _) in self.pending.items()
                if rid not in self.assigned and rid not in self.executed
            }
            self._assign()
        for slot in touched:
            self._check(slot)
        early = [pp for key, pp in sorted(self.early.items()) if key[0] == self.view]
        self.early = {k: pp for k, pp in self.early.items() if k[0] > self.view}
        for pp in early:
            self._on_pre_prepare(pp)
        self.vc_deadline = self.now + self._timeout() if self.pending else float("inf")
