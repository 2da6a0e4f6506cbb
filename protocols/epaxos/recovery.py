"""Recovery of an instance whose command leader went quiet: explicit Prepare, TryPreAccept.

Follows the EPaxos tech report's recovery (Moraru et al. 2013), with the fix of Sutra
("On the correctness of Egalitarian Paxos", 2019): every replica keeps, per instance, both
the ballot it promised and the ballot of its last vote, Prepare replies report the vote
ballot, and the recoverer picks the attributes voted in the highest vote ballot. With a
single ballot variable, two recoveries in different ballots can commit one command with
different dependencies at different replicas.

Given a majority of Prepare replies (the recoverer's own included), in this order:

1. someone has it committed: commit that;
2. someone accepted it: Accept, in our ballot, the attributes accepted in the highest vote
   ballot (plain Paxos);
3. the command leader answered without having committed: nothing was decided in ballot 0
   (it promised our ballot, so it never will): Phase 1 again, slow path only. Only a
   leader that kept its memory can say so: Commit records are written lazily, so one that
   restarted since it voted may have fast-committed and forgotten. Its replies say
   `forgetful` and are not counted (its own, when it recovers, neither): the majority is
   then one the leader is not part of, the tech report's setting where the leader failed;
4. at least F replicas other than the leader hold the leader's own attributes (`orig`):
   they may have been fast-committed, Accept them;
5. at least floor((F+1)/2) do: TryPreAccept them at the other replicas. Each either
   pre-accepts them (no interfering instance it knows of would be ordered differently) or
   names a conflict. F holders in total: Accept. A committed conflict, or too few replicas
   left that could have formed a fast quorum: they were not fast-committed, Phase 1.
   An undecided conflict: defer (retry after a recovery timeout, the conflict recovering
   meanwhile);
6. someone pre-accepted it at all: Phase 1 with that command, slow path only;
7. nobody knows it: commit a no-op through Accept (a fast quorum would intersect ours).

A mixin of EPaxosProtocol: it reads and writes the core's state and calls its instance
state changes (vote, promise, accept, commit); both are declared below, the class that
provides them is not imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocols.base import Ready
from protocols.epaxos.instances import Conflicts, Instance, InstanceId
from protocols.epaxos.lead import Lead
from protocols.epaxos.messages import (
    ACCEPTED,
    COMMITTED,
    NONE,
    PREACCEPTED,
    Cmds,
    Deps,
    PreAccept,
    Prepare,
    PrepareReply,
    TryPreAccept,
    TryPreAcceptReply,
)
from protocols.epaxos.options import Options

RECOVERY_EVENT = "epaxos.recovery"  # data: instance, ballot (an instance's first attempt)
# A recovery's Accept goes out (data: instance, ballot; every attempt that gets there):
# explore's recovery-race nemesis times its cuts by it (labctl/recovery_race.py).
RECOVERY_ACCEPT_EVENT = "epaxos.recovery_accept"


def known_command(r: PrepareReply) -> Cmds:
    """The command a reply holds: phase 1 and TryPreAccept are only ever started from a
    reply that knows it (a misuse raises, it is never a peer's input)."""
    if r.cmds is None:
        raise AssertionError(f"no command known for instance {(r.replica, r.inum)}")
    return r.cmds


class Recovery:
    # State owned by EPaxosProtocol (see core.py).
    me: str
    ids: tuple[str, ...]
    peers: tuple[str, ...]
    n: int
    idx: int
    f: int
    index_of: dict[str, int]
    fast_size: int
    slow_peers: int
    opts: Options
    instances: dict[InstanceId, Instance]
    conflicts: Conflicts
    compacted: list[int]
    leading: dict[InstanceId, Lead]
    recovering: set[InstanceId]
    recovery_tries: dict[InstanceId, int]
    inflight: set[InstanceId]
    max_ballot: int
    now: float
    out: Ready

    if TYPE_CHECKING:  # provided by EPaxosProtocol

        def _instance(self, iid: InstanceId) -> Instance: ...
        def _schedule(self, iid: InstanceId, t: float, replace: bool = True) -> None: ...
        def _recovery_time(self, iid: InstanceId | None = None) -> float: ...
        def _promise(self, inst: Instance, ballot: int) -> None: ...
        def _abandon(self, iid: InstanceId) -> None: ...
        def _commit(self, iid: InstanceId, cmds: Cmds, seq: int, deps: Deps) -> None: ...
        def _accept_phase(
            self, iid: InstanceId, lead: Lead, cmds: Cmds, seq: int, deps: Deps
        ) -> None: ...
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
        ) -> None: ...

    def _start_recovery(self, iid: InstanceId) -> None:
        if len(self.recovering) >= self.opts.max_recoveries:
            self.recovering = {i for i in self.recovering if i in self.leading}
            if len(self.recovering) >= self.opts.max_recoveries:
                self._schedule(iid, self._recovery_time(iid))  # later: enough in flight
                return
        tries = self.recovery_tries[iid] = self.recovery_tries.get(iid, 0) + 1
        self.recovering.add(iid)
        inst = self._instance(iid)
        number = max(inst.ballot, self.max_ballot) // self.n + 1
        ballot = number * self.n + self.idx
        self.max_ballot = max(self.max_ballot, ballot)
        self._promise(inst, ballot)
        self.inflight.discard(iid)
        lead = self.leading[iid] = Lead(
            ballot, "prepare", True, deadline=self._recovery_time(iid), fast=False
        )
        if not inst.forgetful:
            lead.replies[self.me] = self._prepare_reply(inst, ballot)
        if tries == 1:  # telemetry per instance, not per attempt (a partition makes many)
            self.out.event(RECOVERY_EVENT, instance=list(iid), ballot=ballot)
        msg = Prepare(ballot, iid[0], iid[1])
        for p in self.peers:
            self.out.send(p, msg)
        self._schedule(iid, self.now + self.opts.resend_interval)
        if len(lead.replies) >= self.slow_peers + 1:
            self._decide(iid, lead)  # a single replica

    def _prepare_reply(self, inst: Instance, ballot: int) -> PrepareReply:
        # Mutation "single-ballot": one ballot variable per instance, as in the tech report
        # before Sutra's fix. The reply then names the ballot just promised as the vote's,
        # every accepted reply looks equally recent, and the recoverer may pick attributes
        # an older recovery accepted over ones a newer one committed.
        single = self.opts.mutate == "single-ballot"
        return PrepareReply(
            ballot,
            inst.replica,
            inst.inum,
            True,
            inst.status,
            inst.ballot if single else inst.vballot,
            inst.orig,
            inst.cmds,
            inst.seq,
            inst.deps,
            inst.forgetful,
        )

    def _on_prepare(self, src: str, m: Prepare) -> None:
        inst = self._instance((m.replica, m.inum))
        if inst.status == COMMITTED:
            self.out.send(src, self._prepare_reply(inst, m.ballot))
            return
        if m.ballot < inst.ballot:
            self.out.send(src, PrepareReply(inst.ballot, m.replica, m.inum, False))
            return
        if m.ballot > inst.ballot:
            self._promise(inst, m.ballot)
            # Someone recovers it now: give them time (a timer of ours moves later), and
            # recover it ourselves only if it is still undecided then (we may never have
            # heard of it). Racing them with a higher ballot would preempt both.
            self.recovering.discard(inst.id)
            self._schedule(inst.id, self._recovery_time(inst.id))
        self.out.send(src, self._prepare_reply(inst, m.ballot))

    def _on_prepare_reply(self, src: str, m: PrepareReply) -> None:
        iid = (m.replica, m.inum)
        lead = self.leading.get(iid)
        if lead is None or lead.phase != "prepare":
            return
        if m.ok and m.status == COMMITTED and m.cmds is not None:
            self._commit(iid, m.cmds, m.seq, m.deps)
            return
        if not m.ok:
            if m.ballot > lead.ballot:
                self._promise(self._instance(iid), m.ballot)
                self._abandon(iid)
            return
        if m.ballot != lead.ballot or src in lead.replies or m.forgetful:
            return  # a forgetful leader's promise holds, but its state is no evidence
        lead.replies[src] = m
        if len(lead.replies) >= self.slow_peers + 1:
            self._decide(iid, lead)

    def _decide(self, iid: InstanceId, lead: Lead) -> None:
        replies: dict[str, PrepareReply] = lead.replies
        known = [r for r in replies.values() if r.status != NONE and r.cmds is not None]
        for r in known:
            if r.status == COMMITTED:
                self._commit(iid, r.cmds or (), r.seq, r.deps)
                return
        accepted = [r for r in known if r.status == ACCEPTED]
        if accepted:
            best = max(accepted, key=lambda r: r.vballot)
            self._accept_phase(iid, lead, best.cmds or (), best.seq, best.deps)
            return
        leader = self.ids[iid[0]]
        leader_answered = leader in replies
        holders = {
            src
            for src, r in replies.items()
            if src != leader and r.status == PREACCEPTED and r.orig and r.cmds is not None
        }
        if holders and not leader_answered:
            orig = replies[min(holders)]
            if len(holders) >= self.f:
                self._accept_phase(iid, lead, orig.cmds or (), orig.seq, orig.deps)
                return
            if len(holders) >= (self.f + 1) // 2:
                self._try_phase(iid, lead, orig, holders)
                return
        preaccepted = [r for r in known if r.status == PREACCEPTED]
        if preaccepted:
            self._phase1(iid, lead, max(preaccepted, key=lambda r: r.vballot))
        else:
            self._accept_phase(iid, lead, (), 0, (0,) * self.n)  # no-op

    def _phase1(self, iid: InstanceId, lead: Lead, basis: PrepareReply) -> None:
        """Pre-accept the command again in our ballot, never fast: attributes are the
        union of what the replies and our own conflict index know, then Accept."""
        cmds = known_command(basis)
        inst = self._instance(iid)
        seq, deps = self.conflicts.attributes(cmds, basis.seq, basis.deps, iid)
        for r in lead.replies.values():
            if getattr(r, "cmds", None) == cmds and len(r.deps) == self.n:
                seq, deps = max(seq, r.seq), tuple(map(max, deps, r.deps))
        lead.phase, lead.cmds, lead.seq, lead.deps = "preaccept", cmds, seq, deps
        lead.sent_seq, lead.sent_deps = seq, deps
        lead.replies, lead.fast = {}, False
        self._vote(inst, PREACCEPTED, lead.ballot, cmds, seq, deps, orig=False)
        if self.slow_peers == 0:
            self._accept_phase(iid, lead, cmds, seq, deps)
            return
        msg = PreAccept(lead.ballot, iid[0], iid[1], cmds, seq, deps)
        for p in self.peers:
            self.out.send(p, msg)

    def _try_phase(
        self, iid: InstanceId, lead: Lead, orig: PrepareReply, holders: set[str]
    ) -> None:
        cmds = known_command(orig)
        lead.phase, lead.cmds, lead.seq, lead.deps = "trypreaccept", cmds, orig.seq, orig.deps
        # Replicas that answered our Prepare without holding the leader's attributes promised
        # our ballot: they are not, and never will be, part of a ballot-0 fast quorum.
        lead.not_in_quorum = {self.index_of[s] for s in lead.replies if s not in holders}
        lead.supporters = set(holders)
        lead.targets = {r for r in self.ids if r not in holders and r != self.ids[iid[0]]}
        lead.replies = {}
        if self.n - len(lead.not_in_quorum) < self.fast_size:
            self._phase1(iid, lead, orig)
            return
        msg = TryPreAccept(lead.ballot, iid[0], iid[1], cmds, orig.seq, orig.deps)
        for p in sorted(lead.targets):
            if p == self.me:
                self._handle_try_reply(iid, lead, p, self._try_pre_accept(msg))
                if self.leading.get(iid) is not lead or lead.phase != "trypreaccept":
                    return
            else:
                self.out.send(p, msg)

    def _on_try_pre_accept(self, src: str, m: TryPreAccept) -> None:
        self.out.send(src, self._try_pre_accept(m))

    def _try_pre_accept(self, m: TryPreAccept) -> TryPreAcceptReply:
        iid = (m.replica, m.inum)
        inst = self._instance(iid)
        if m.ballot < inst.ballot:
            return TryPreAcceptReply(inst.ballot, m.replica, m.inum, False)
        if inst.status >= ACCEPTED:
            # Accepted or committed here: never regress it to pre-accepted.
            return TryPreAcceptReply(
                m.ballot, m.replica, m.inum, False, m.replica, m.inum, inst.status == COMMITTED
            )
        if not (inst.status == PREACCEPTED and inst.seq == m.seq and inst.deps == m.deps):
            conflict = self._find_conflict(m)
            if conflict is not None:
                self._promise(inst, m.ballot)
                q, j, committed = conflict
                return TryPreAcceptReply(m.ballot, m.replica, m.inum, False, q, j, committed)
        self._vote(inst, PREACCEPTED, m.ballot, m.cmds, m.seq, m.deps, orig=True)
        return TryPreAcceptReply(m.ballot, m.replica, m.inum, True)

    def _find_conflict(self, m: TryPreAccept) -> tuple[int, int, bool] | None:
        """An interfering instance these attributes would order wrongly, and whether it is
        committed: not among the dependencies yet not depending on this one, or among them
        but with seq at least ours (the reference implementation's rule). Scans the keys'
        instance lists: this is the rare recovery path.

        A compacted instance W (executed at every replica) on these keys that the deps do
        not cover is a committed conflict: had the attributes been fast-committed, W
        would depend on this instance and could not have executed anywhere before it
        committed everywhere (recovery found it committed nowhere). One on other keys is
        no conflict at all: counting every compacted number above the deps as one (as
        this did) sent a recovery to Phase 1 with new attributes while the command
        leader, back from a disk stall, fast-committed the original ones (two decisions
        for one instance, found by `labctl chaos` and a stalls scenario in `sim run`). A
        compacted instance the index no longer knows of (rebuilt at a restart) is missed;
        harmless: it executed everywhere already, so every replica orders it first."""
        hit = self.conflicts.forgotten_conflict(m.cmds, m.deps)
        if hit is not None:
            return hit[0], hit[1], True
        for wid in self.conflicts.on_keys(m.cmds):
            q, j = wid
            if wid == (m.replica, m.inum):
                continue
            w = self.instances.get(wid)
            if w is None or not w.cmds or len(w.deps) != self.n:
                continue
            if w.deps[m.replica] >= m.inum:
                continue  # it depends on the instance being recovered: ordered after it
            if j > m.deps[q] or (
                j < m.deps[q] and w.seq >= m.seq and (q != m.replica or w.status > PREACCEPTED)
            ):
                return q, j, w.status == COMMITTED
        return None

    def _on_try_pre_accept_reply(self, src: str, m: TryPreAcceptReply) -> None:
        iid = (m.replica, m.inum)
        lead = self.leading.get(iid)
        if lead is None or lead.phase != "trypreaccept" or src not in lead.targets:
            return
        if m.ballot > lead.ballot:
            self._promise(self._instance(iid), m.ballot)
            self._abandon(iid)
            return
        if m.ballot == lead.ballot:
            self._handle_try_reply(iid, lead, src, m)

    def _handle_try_reply(
        self, iid: InstanceId, lead: Lead, src: str, m: TryPreAcceptReply
    ) -> None:
        if src in lead.replies:
            return
        lead.replies[src] = m
        if m.ok:
            lead.supporters.add(src)
            if len(lead.supporters) >= self.f:
                self._accept_phase(iid, lead, lead.cmds, lead.seq, lead.deps)
            return
        if m.conflict_replica < 0:
            self._abandon(iid)  # a ballot refusal
            return
        if (m.conflict_replica, m.conflict_inum) == iid:
            # Accepted (or committed) at that replica in some ballot: a new Prepare sees it.
            self._abandon(iid)
            self._schedule(iid, self.now + self.opts.resend_interval)
            return
        basis = PrepareReply(lead.ballot, iid[0], iid[1], True, PREACCEPTED, lead.ballot, False,
                             lead.cmds, lead.seq, lead.deps)  # fmt: skip
        if m.conflict_committed:
            self._phase1(iid, lead, basis)  # a committed conflict: not fast-committed
            return
        lead.not_in_quorum.update((self.index_of[src], m.conflict_replica))
        if self.n - len(lead.not_in_quorum) < self.fast_size:
            self._phase1(iid, lead, basis)
            return
        if all(t in lead.replies for t in lead.targets):
            # Undecided conflicts stand in the way: defer, and make sure they recover.
            self._abandon(iid)
            for r in lead.replies.values():
                if not r.ok and r.conflict_replica >= 0:
                    conflict = (r.conflict_replica, r.conflict_inum)
                    self._schedule(conflict, self._recovery_time(), replace=False)
