"""Targeted schedules for Raft's named mutations, on the in-memory network (simnet).

Random faults rarely reach these bugs (issue 21 measured why), so each schedule drives
the one situation its classic bug needs; run with and without the mutation, it shows the
violation and its absence. The tests (tests/test_raft_mutations.py) and `labctl
selftest` (when explore does not catch the mutation within its budget) use them;
`SCHEDULES` is what `RaftProtocol.targeted` names (protocols/targeted.py).
"""

from __future__ import annotations

from collections.abc import Callable

from protocols.raft import RaftProtocol
from protocols.raft.messages import RequestVote, VoteResponse
from protocols.simnet import SimNet
from protocols.targeted import Hold, Schedule, kinds, power_loss


def net_for(mutate: str, seed: int = 3, **options: object) -> SimNet:
    return SimNet(RaftProtocol, 3, seed=seed, options={"mutate": mutate, **options})


def _role(net: SimNet, node: str) -> str:
    return net.status(node)["role"] if node in net.alive() else "down"


def forget_vote_schedule(net: SimNet) -> None:
    """Raft paper 5.2: a voter restarts right after granting its vote and, having forgotten
    it, grants the same term to a second candidate.

    x leads and is cut off; y wins the next term with v's vote; v crashes before y's first
    AppendEntries reaches it and restarts; y is cut off, x comes back and campaigns in the
    term y won."""
    x = net.wait_leader()
    y, v = (i for i in net.ids if i != x)
    net.isolate(x)
    # Whoever of y, v times out first campaigns; name them so that y is the winner.
    assert net.run_until(lambda: "leader" in (_role(net, y), _role(net, v)), 3.0)
    if _role(net, v) == "leader":
        y, v = v, y
    term = net.status(y)["term"]
    # v granted its vote and y already knows it won: v dies before y's entries arrive.
    net.crash(v)
    net.heal()
    net.isolate(y)
    net.restart(v)
    net.run_until(lambda: "leader" in (_role(net, x), _role(net, v)), 3.0)
    net.run_for(0.5)
    assert net.status(y)["term"] == term


def figure8_schedule(net: SimNet) -> None:
    """Raft paper Figure 8 on three nodes, with the lab's default batch size.

    a leads and is cut off holding more than a batch of entries of its term; c wins the
    next term with b's vote and is cut off at once, its own entry on no one else. a comes
    back, wins a later term with b, and sends b its old entries, one batch first: b's ack
    covers only entries of a's old term. A leader that counts replicas for them commits
    them; cut off again before its own term's entry reaches b, a leaves b with an older
    last term than c, which then wins and overwrites what a committed."""
    a = net.wait_leader()
    net.put(a, "k", "base")
    net.run_for(0.3)
    base = net.status(a)["commit_index"]
    b, c = (i for i in net.ids if i != a)
    net.isolate(a)
    batch = net.proto(a).opts.max_batch  # type: ignore[attr-defined]
    for i in range(batch + 8):
        net.put(a, "k", f"a{i}")  # stuck on a: it cannot reach a majority
    assert net.run_until(lambda: "leader" in (_role(net, b), _role(net, c)), 3.0)
    if _role(net, b) == "leader":
        b, c = c, b
    net.put(c, "k", "c")
    net.isolate(c)  # c's entries stay on c (messages in flight are cut too)
    net.heal()
    net.isolate(c)
    assert net.run_until(lambda: _role(net, a) == "leader", 3.0)
    # Cut a off the moment it commits past the common prefix (or give up after a while:
    # the correct protocol only commits once its own term's entry is on b too).
    net.run_until(lambda: net.status(a)["commit_index"] > base, 1.0)
    net.isolate(a)
    net.heal()
    net.isolate(a)
    net.run_until(lambda: _role(net, c) == "leader", 3.0)
    net.run_for(1.0)


def stale_candidate_schedule(net: SimNet) -> str:
    """c is cut off while a and b commit (and acknowledge) a write; a is cut off the moment
    it commits, before b learns the commit index; c, whose log lacks the write, campaigns
    against b. Returns the acknowledged write's request id."""
    a = net.wait_leader()
    b, c = (i for i in net.ids if i != a)
    net.run_for(0.2)
    net.isolate(c)
    target = net.status(a)["log"] + 1
    rid = net.put(a, "k", "acked")
    assert net.run_until(lambda: net.status(a)["commit_index"] >= target, 1.0)
    net.isolate(a)
    assert net.run_until(lambda: net.reply_for(rid) is not None, 1.0)
    net.heal()
    net.isolate(a)
    # b's own campaign never reaches c: only c can win, if b votes for it.
    net.filter = lambda src, dst, msg: not (src == b and isinstance(msg, RequestVote))
    net.run_until(lambda: "leader" in (_role(net, b), _role(net, c)), 3.0)
    net.filter = None
    leader = net.leader()
    if leader is not None:  # with the check, c cannot win and b cannot ask c
        net.put(leader, "k", "later")
    net.run_for(1.0)
    return rid


def power_loss_schedule(net: SimNet) -> None:
    """a and b commit and acknowledge writes while c is cut off; then a dies and b loses
    power (what it had not fsynced is gone); b and c elect a leader between them."""
    a = net.wait_leader()
    b, c = (i for i in net.ids if i != a)
    net.isolate(c)
    rids = [net.put(a, "k", f"v{i}") for i in range(5)]
    assert net.run_until(lambda: all(net.reply_for(r) for r in rids), 1.0)
    net.crash(a)
    power_loss(net, b)
    net.heal()
    net.restart(b)
    net.wait_leader(max_time=3.0, exclude=[a])
    net.put(net.leader() or b, "k", "after")
    net.run_for(1.0)


def new_leader_read_schedule(net: SimNet) -> None:
    """a commits and acknowledges a write, then is cut off before b learns the commit
    index; b wins and is asked at once to read the key (ReadIndex)."""
    a = net.wait_leader()
    _, c = (i for i in net.ids if i != a)
    net.run_for(0.2)  # heartbeats settled: the write's own AppendEntries goes out alone
    net.isolate(c)  # c will lack the write: the new leader's first AppendEntries fails there
    target = net.status(a)["log"] + 1
    rid = net.put(a, "k", "new")
    assert net.run_until(lambda: net.status(a)["commit_index"] >= target, 1.0)
    net.isolate(a)  # b holds the entry and does not know it is committed
    assert net.run_until(lambda: net.reply_for(rid) is not None, 1.0)
    net.heal()
    net.isolate(a)
    assert net.run_until(lambda: net.leader() not in (None, a), 3.0)
    net.get(net.leader() or "", "k", read_mode="quorum")
    net.run_for(0.5)


def delayed_vote_schedule(net: SimNet) -> bool:
    """A granted vote outlives a re-election (pre-vote off, Raft paper 5.2).

    `old` leads and is cut off. x campaigns, and every vote v sends x is held in the network.
    `old` comes back to v (not to x), steps down to v's higher term and wins a later term T
    with v's vote; x campaigns in T too, and only then do v's old grants arrive at x.
    Returns whether the schedule reached that point."""
    old = net.wait_leader()
    x, v = (i for i in net.ids if i != old)
    net.isolate(old)
    assert net.run_until(lambda: "candidate" in (_role(net, x), _role(net, v)), 3.0)
    if _role(net, v) == "candidate":
        x, v = v, x
    hold = Hold(net, lambda s, d, m: s == v and d == x and isinstance(m, VoteResponse))
    net.heal()
    net.cut(old, x)
    reached = net.run_until(
        lambda: (
            _role(net, old) == "leader"
            and _role(net, x) == "candidate"
            and net.status(x)["term"] == net.status(old)["term"]
        ),
        5.0,
    )
    hold.release()
    net.run_for(0.3)
    return reached


def lease_read_after_new_leader(net: SimNet, a: str) -> None:
    """Once a leader other than `a` exists, cut `a` off the replicas (its clients still
    reach it), write through the new leader, then read the key at `a` by lease."""
    if not net.run_until(lambda: net.leader() not in (None, a), 3.0):
        return
    net.isolate(a)  # the new term never reaches a: it goes on believing it leads
    rid = net.put(net.leader() or "", "k", "new")
    assert net.run_until(lambda: net.reply_for(rid) is not None, 1.0)
    net.get(a, "k", read_mode="lease")
    net.run_for(0.3)


def cut_off_candidate_schedule(net: SimNet) -> None:
    """a leads; only the a-c link breaks. c times out and asks b, which still hears a."""
    a = net.wait_leader()
    c = next(i for i in net.ids if i != a)
    net.put(a, "k", "old")
    net.run_for(0.2)
    net.cut(a, c)
    lease_read_after_new_leader(net, a)


def fast_follower_clocks_schedule(net: SimNet) -> None:
    """a leads; both followers' clocks run fast by the whole drift bound (allowed), then
    a is cut off from them: their election timeouts end sooner in true time."""
    a = net.wait_leader()
    net.put(a, "k", "old")
    net.run_for(0.2)
    drift = net.proto(a).opts.max_drift  # type: ignore[attr-defined]
    for i in net.ids:
        if i != a:
            net.set_clock(i, drift=drift * 0.98)
    net.run_for(0.1)
    net.isolate(a)
    lease_read_after_new_leader(net, a)


# A wide drift bound and a long timeout widen the gap the bound closes (ET * d / (1 + d)),
# so most randomized election timeouts of the fast followers end inside it.
WIDE = {"max_drift": 0.9, "election_timeout": 1.0, "heartbeat_interval": 0.1}


def _schedule(schedule: Callable[[SimNet], object], wide: bool = False,
              **options: object) -> Schedule:  # fmt: skip
    """`schedule` as a targeted schedule: a fresh network with the mutation, judged."""

    def run(mutate: str, seed: int) -> set[str]:
        net = net_for(mutate, seed, **(WIDE if wide else {}), **options)
        schedule(net)
        return kinds(net)

    return run


SCHEDULES: dict[str, Schedule] = {
    "no-figure8": _schedule(figure8_schedule),
    "forget-vote": _schedule(forget_vote_schedule),
    "forget-term": _schedule(forget_vote_schedule),
    "no-up-to-date-check": _schedule(stale_candidate_schedule),
    "ack-before-fsync": _schedule(power_loss_schedule),
    "lease-no-drift-bound": _schedule(fast_follower_clocks_schedule, wide=True),  # see WIDE
    "stale-reply": _schedule(delayed_vote_schedule, pre_vote=False),
    "read-index-before-commit": _schedule(new_leader_read_schedule),
    "no-check-quorum-lease": _schedule(cut_off_candidate_schedule),
}
