"""PBFT at sizes other than 3f+1: quorums of ceil((n+f+1)/2), so that two quorums always
share an honest replica. With 3 replicas (f = 0) that is a majority: a partition cannot
let two primaries each commit their own request at one sequence number."""

from __future__ import annotations

import pytest

from tests.pbft_helpers import make_net, put_all, write


@pytest.mark.parametrize(("n", "quorum"), [(3, 2), (4, 3), (5, 4), (7, 5)])
def test_quorum_sizes(n: int, quorum: int) -> None:
    net = make_net(n)
    assert net.proto("r0").quorum == quorum


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_three_replicas_cut_in_two_never_commit_two_requests_at_one_seq(seed: int) -> None:
    net = make_net(3, seed=seed)
    write(net, "a", "0")
    net.partition(["r0"], ["r1", "r2"])  # the primary of view 0 alone
    for i in range(5):
        put_all(net, f"k{i}", f"v{i}")
    net.run_for(2.0)  # the majority side changes view and goes on; r0 cannot commit alone
    assert all(net.status(r)["view"] >= 1 for r in ("r1", "r2"))
    net.heal()
    write(net, "after", "1", max_time=5.0)
    net.check()  # no two honest replicas applied different commands at one seq
    # (f+1 = 1 reply was enough for the client: the others may still be executing.)
    assert net.run_until(lambda: net.kv("r0") == net.kv("r1") == net.kv("r2"), 3.0)
