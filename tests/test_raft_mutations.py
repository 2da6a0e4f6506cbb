"""Raft's named mutations, each shown by the schedule that makes its bug do harm.

Random faults rarely reach these bugs (issue 21 measured 0 hits in thousands of commits),
so each test drives the one schedule the classic bug needs, on the in-memory network,
and asserts two halves: with the mutation the declared violation appears; without it the
same schedule is safe.
"""

from __future__ import annotations

import pytest

from protocols.raft import RaftProtocol
from protocols.raft.messages import RequestVote, VoteResponse
from protocols.simnet import SimNet
from tests.mutation_helpers import Hold, declared, kinds, power_loss


def _net(mutate: str, seed: int = 3, **options: object) -> SimNet:
    return SimNet(RaftProtocol, 3, seed=seed, options={"mutate": mutate, **options})


def _role(net: SimNet, node: str) -> str:
    return net.status(node)["role"] if node in net.alive() else "down"


# -- forget-vote -----------------------------------------------------------------------------


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


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_forget_vote_elects_two_leaders_in_one_term(seed: int) -> None:
    net = _net("forget-vote", seed)
    forget_vote_schedule(net)
    found = kinds(net)
    assert "split-brain" in found and found <= declared("raft", "forget-vote") | {"split-brain"}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_same_schedule_is_safe_when_the_vote_is_persisted(seed: int) -> None:
    net = _net("", seed)
    forget_vote_schedule(net)
    assert kinds(net) == set()


# -- no-figure8 ------------------------------------------------------------------------------


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


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_figure8_commits_an_entry_a_later_leader_overwrites(seed: int) -> None:
    net = _net("no-figure8", seed)
    figure8_schedule(net)
    found = kinds(net)
    assert found and found <= declared("raft", "no-figure8"), (found, net.violations)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_figure8_schedule_is_safe_when_only_own_term_entries_are_counted(seed: int) -> None:
    net = _net("", seed)
    figure8_schedule(net)
    assert kinds(net) == set()


# -- forget-term -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_forget_term_votes_twice_in_one_term_after_a_restart(seed: int) -> None:
    net = _net("forget-term", seed)
    forget_vote_schedule(net)  # the same restart: the voter is back in term 0
    assert "split-brain" in kinds(net)


# -- no-up-to-date-check ---------------------------------------------------------------------


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


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_up_to_date_check_elects_a_stale_leader_that_loses_acked_writes(seed: int) -> None:
    net = _net("no-up-to-date-check", seed)
    stale_candidate_schedule(net)
    found = kinds(net)
    assert found and found <= declared("raft", "no-up-to-date-check"), net.violations


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_stale_candidate_loses_when_votes_compare_logs(seed: int) -> None:
    net = _net("", seed)
    stale_candidate_schedule(net)
    assert kinds(net) == set()


# -- ack-before-fsync ------------------------------------------------------------------------


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


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ack_before_fsync_loses_acknowledged_writes_in_a_power_loss(seed: int) -> None:
    net = _net("ack-before-fsync", seed)
    power_loss_schedule(net)
    found = kinds(net)
    assert "lost-write" in found and found <= declared("raft", "ack-before-fsync")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_power_loss_loses_nothing_acknowledged_when_followers_fsync_first(seed: int) -> None:
    net = _net("", seed)
    power_loss_schedule(net)
    assert kinds(net) == set()


# -- read-index-before-commit ----------------------------------------------------------------


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


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_read_index_before_commit_returns_a_stale_value(seed: int) -> None:
    net = _net("read-index-before-commit", seed)
    new_leader_read_schedule(net)
    assert kinds(net) == {"nonlinearizable"}, net.stale_reads()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_new_leader_reads_after_committing_its_entry(seed: int) -> None:
    net = _net("", seed)
    new_leader_read_schedule(net)
    assert kinds(net) == set()


# -- stale-reply -----------------------------------------------------------------------------


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


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_stale_reply_counts_an_old_vote_and_elects_a_second_leader(seed: int) -> None:
    net = _net("stale-reply", seed, pre_vote=False)
    assert delayed_vote_schedule(net)
    assert "split-brain" in kinds(net)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_old_votes_are_ignored_when_replies_carry_their_term(seed: int) -> None:
    net = _net("", seed, pre_vote=False)
    assert delayed_vote_schedule(net)
    assert kinds(net) == set()


# -- leases: no-check-quorum-lease, lease-no-drift-bound --------------------------------------


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


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_check_quorum_lease_serves_a_stale_read_under_a_new_leader(seed: int) -> None:
    net = _net("no-check-quorum-lease", seed)
    cut_off_candidate_schedule(net)
    found = kinds(net)
    assert "nonlinearizable" in found and found <= declared("raft", "no-check-quorum-lease")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sticky_votes_keep_a_cut_off_candidate_from_winning_during_a_lease(seed: int) -> None:
    net = _net("", seed)
    cut_off_candidate_schedule(net)
    assert kinds(net) == set()


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


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lease_no_drift_bound_overlaps_the_next_leader(seed: int) -> None:
    net = _net("lease-no-drift-bound", seed, **WIDE)
    fast_follower_clocks_schedule(net)
    found = kinds(net)
    assert "nonlinearizable" in found and found <= declared("raft", "lease-no-drift-bound")


@pytest.mark.parametrize("seed", [1, 2, 3, 13, 17])
def test_a_lease_shortened_by_the_drift_bound_ends_before_the_next_leader(seed: int) -> None:
    net = _net("", seed, **WIDE)
    fast_follower_clocks_schedule(net)
    assert kinds(net) == set()
