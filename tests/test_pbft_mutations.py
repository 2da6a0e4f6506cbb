"""PBFT's named mutations, each shown by a schedule that makes its bug do harm, beside the
same schedule without the mutation (on the in-memory network)."""

from __future__ import annotations

from protocols.pbft.targeted import (
    committed_at_one_replica_then_view_change,
    forged_commit_proof,
    net_for,
    one_equivocating_primary,
)
from protocols.targeted import declared, kinds


def test_floor_quorum_lets_one_liar_split_the_honest_replicas() -> None:
    net = net_for("floor-quorum")
    one_equivocating_primary(net)
    found = kinds(net)
    assert "divergence" in found and found <= declared("pbft", "floor-quorum"), net.violations


def test_one_liar_is_voted_out_with_quorums_of_2f_plus_1() -> None:
    net = net_for("")
    one_equivocating_primary(net)
    assert kinds(net) == set()


def test_skip_verify_executes_a_request_nobody_ordered() -> None:
    net = net_for("skip-verify")
    forged_commit_proof(net)
    found = kinds(net)
    assert "divergence" in found and found <= declared("pbft", "skip-verify"), net.violations


def test_a_forged_commit_certificate_is_dropped_when_signatures_are_checked() -> None:
    net = net_for("")
    forged_commit_proof(net)
    assert kinds(net) == set()
    assert net.status("r1")["drops"].get("bad_commit_proof") == 1


def test_view_change_no_proof_gives_a_committed_number_to_another_request() -> None:
    net = net_for("view-change-no-proof")
    committed_at_one_replica_then_view_change(net)
    found = kinds(net)
    assert "divergence" in found and found <= declared("pbft", "view-change-no-proof")


def test_a_new_view_re_issues_what_was_prepared() -> None:
    net = net_for("")
    committed_at_one_replica_then_view_change(net)
    assert kinds(net) == set()
