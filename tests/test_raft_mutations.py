"""Raft's named mutations, each shown by the schedule that makes its bug do harm.

Random faults rarely reach these bugs (issue 21 measured 0 hits in thousands of commits),
so each test drives the one schedule the classic bug needs, on the in-memory network,
and asserts two halves: with the mutation the declared violation appears; without it the
same schedule is safe.
"""

from __future__ import annotations

import pytest

from protocols.raft.targeted import (
    WIDE,
    cut_off_candidate_schedule,
    delayed_vote_schedule,
    fast_follower_clocks_schedule,
    figure8_schedule,
    forget_vote_schedule,
    net_for,
    new_leader_read_schedule,
    power_loss_schedule,
    stale_candidate_schedule,
)
from protocols.targeted import declared, kinds

# -- forget-vote -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_forget_vote_elects_two_leaders_in_one_term(seed: int) -> None:
    net = net_for("forget-vote", seed)
    forget_vote_schedule(net)
    found = kinds(net)
    assert "split-brain" in found and found <= declared("raft", "forget-vote") | {"split-brain"}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_same_schedule_is_safe_when_the_vote_is_persisted(seed: int) -> None:
    net = net_for("", seed)
    forget_vote_schedule(net)
    assert kinds(net) == set()


# -- no-figure8 ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_figure8_commits_an_entry_a_later_leader_overwrites(seed: int) -> None:
    net = net_for("no-figure8", seed)
    figure8_schedule(net)
    found = kinds(net)
    assert found and found <= declared("raft", "no-figure8"), (found, net.violations)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_figure8_schedule_is_safe_when_only_own_term_entries_are_counted(seed: int) -> None:
    net = net_for("", seed)
    figure8_schedule(net)
    assert kinds(net) == set()


# -- forget-term -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_forget_term_votes_twice_in_one_term_after_a_restart(seed: int) -> None:
    net = net_for("forget-term", seed)
    forget_vote_schedule(net)  # the same restart: the voter is back in term 0
    assert "split-brain" in kinds(net)


# -- no-up-to-date-check ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_up_to_date_check_elects_a_stale_leader_that_loses_acked_writes(seed: int) -> None:
    net = net_for("no-up-to-date-check", seed)
    stale_candidate_schedule(net)
    found = kinds(net)
    assert found and found <= declared("raft", "no-up-to-date-check"), net.violations


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_stale_candidate_loses_when_votes_compare_logs(seed: int) -> None:
    net = net_for("", seed)
    stale_candidate_schedule(net)
    assert kinds(net) == set()


# -- ack-before-fsync ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ack_before_fsync_loses_acknowledged_writes_in_a_power_loss(seed: int) -> None:
    net = net_for("ack-before-fsync", seed)
    power_loss_schedule(net)
    found = kinds(net)
    assert "lost-write" in found and found <= declared("raft", "ack-before-fsync")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_power_loss_loses_nothing_acknowledged_when_followers_fsync_first(seed: int) -> None:
    net = net_for("", seed)
    power_loss_schedule(net)
    assert kinds(net) == set()


# -- read-index-before-commit ----------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_read_index_before_commit_returns_a_stale_value(seed: int) -> None:
    net = net_for("read-index-before-commit", seed)
    new_leader_read_schedule(net)
    assert kinds(net) == {"nonlinearizable"}, net.stale_reads()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_new_leader_reads_after_committing_its_entry(seed: int) -> None:
    net = net_for("", seed)
    new_leader_read_schedule(net)
    assert kinds(net) == set()


# -- stale-reply -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_stale_reply_counts_an_old_vote_and_elects_a_second_leader(seed: int) -> None:
    net = net_for("stale-reply", seed, pre_vote=False)
    assert delayed_vote_schedule(net)
    assert "split-brain" in kinds(net)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_old_votes_are_ignored_when_replies_carry_their_term(seed: int) -> None:
    net = net_for("", seed, pre_vote=False)
    assert delayed_vote_schedule(net)
    assert kinds(net) == set()


# -- leases: no-check-quorum-lease, lease-no-drift-bound --------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_check_quorum_lease_serves_a_stale_read_under_a_new_leader(seed: int) -> None:
    net = net_for("no-check-quorum-lease", seed)
    cut_off_candidate_schedule(net)
    found = kinds(net)
    assert "nonlinearizable" in found and found <= declared("raft", "no-check-quorum-lease")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sticky_votes_keep_a_cut_off_candidate_from_winning_during_a_lease(seed: int) -> None:
    net = net_for("", seed)
    cut_off_candidate_schedule(net)
    assert kinds(net) == set()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lease_no_drift_bound_overlaps_the_next_leader(seed: int) -> None:
    net = net_for("lease-no-drift-bound", seed, **WIDE)
    fast_follower_clocks_schedule(net)
    found = kinds(net)
    assert "nonlinearizable" in found and found <= declared("raft", "lease-no-drift-bound")


@pytest.mark.parametrize("seed", [1, 2, 3, 13, 17])
def test_a_lease_shortened_by_the_drift_bound_ends_before_the_next_leader(seed: int) -> None:
    net = net_for("", seed, **WIDE)
    fast_follower_clocks_schedule(net)
    assert kinds(net) == set()
