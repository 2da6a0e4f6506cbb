"""Issue 14, case 4: forged peer messages, on the pure protocols.

In a lab an outsider cannot send as a node any more (tests/test_lab_auth.py); these are
the messages a node that holds the lab's secret, or a bug, could still send: none may
crash its target, persist poison, or make it spin.
"""

from __future__ import annotations

import random

from nodes.state_machine import StateMachine
from protocols.base import NodeConfig, decode_options
from protocols.epaxos import EPaxosProtocol
from protocols.epaxos.catchup import MAX_AHEAD, MAX_GAP
from protocols.epaxos.messages import Sync
from protocols.raft import RaftProtocol
from protocols.raft.messages import InstallSnapshot


def _raft_follower() -> RaftProtocol:
    ids = ("r0", "r1", "r2")
    opts = decode_options(RaftProtocol.Options, {})
    node = RaftProtocol(
        NodeConfig("r0", ids, opts, random.Random(1), check_image=StateMachine.check_image)
    )
    node.start(0.0, [])
    return node


def test_a_forged_install_snapshot_is_dropped_and_never_persisted() -> None:
    node = _raft_follower()
    ready = node.on_message(0.1, "r1", InstallSnapshot(term=5, index=10, snap_term=5,
                                                      data=b"\x93not an image"))  # fmt: skip
    assert ready.compact is None and ready.restore is None
    assert not [r for r in ready.persist if type(r).__name__ == "SnapshotRecord"]
    assert node.status()["drops"].get("bad_snapshot") == 1


def test_an_install_snapshot_whose_image_covers_another_index_is_dropped() -> None:
    sm = StateMachine()
    image = sm.snapshot()  # applied index 0
    node = _raft_follower()
    ready = node.on_message(0.1, "r1", InstallSnapshot(term=5, index=10, snap_term=5, data=image))
    assert ready.compact is None and ready.restore is None
    assert node.status()["drops"].get("bad_snapshot") == 1


def test_a_real_image_is_still_installed() -> None:
    sm = StateMachine()
    sm.applied_index, sm.applied_term = 10, 5
    node = _raft_follower()
    ready = node.on_message(
        0.1, "r1", InstallSnapshot(term=5, index=10, snap_term=5, data=sm.snapshot())
    )
    assert ready.restore is not None and ready.compact is not None


def test_a_forged_sync_with_a_huge_range_does_bounded_work() -> None:
    ids = ("r0", "r1", "r2")
    opts = decode_options(EPaxosProtocol.Options, {})
    target = EPaxosProtocol(NodeConfig("r0", ids, opts, random.Random(1)))
    target.start(0.0, [])
    # "r1 knows r2's instances up to 2**62": once, it pushed the row's horizon so far that
    # every later Sync scanned it number by number (r0 at 100% CPU, answering nothing).
    ready = target.on_message(0.1, "r1", Sync((0, 0, 2**62)))
    assert target.known_max[2] <= MAX_AHEAD
    assert len(ready.messages) <= 3 * MAX_GAP
    # An honest peer far behind gets at most a batch per Sync, however far the horizon.
    for _ in range(100):
        target.on_message(0.2, "r1", Sync((0, 0, 2**62)))
    assert target.known_max[2] <= 101 * MAX_AHEAD
    ready = target.on_message(0.3, "r2", Sync((0, 0, 0)))
    assert len(ready.messages) <= 3 * MAX_GAP
