"""The two obligations of `Ready` a protocol could once get wrong by forgetting a line:
records persisted before a compaction, and the fence that keeps parallel messages from
overtaking a vote. Both are the contract's job now; these tests hold it to that."""

from __future__ import annotations

import random

import msgspec

from protocols.base import ClientRequest, Command, NodeConfig, Ready
from protocols.epaxos import EPaxosProtocol
from protocols.epaxos import Options as EPaxosOptions
from protocols.epaxos.messages import PreAccept
from protocols.raft import Options as RaftOptions
from protocols.raft import RaftProtocol
from protocols.raft.messages import HardState


def wal_after(wal: list[msgspec.Struct], ready: Ready) -> list[msgspec.Struct]:
    """The WAL once the runtime has carried `ready` out (nodes/replica.py's order: the
    rewrite, then `persist`, then `persist_after`)."""
    records = list(ready.compact) if ready.compact is not None else list(wal)
    return [*records, *ready.persist, *ready.persist_after]


def recovered_hard_state(wal: list[msgspec.Struct]) -> tuple[int, str | None]:
    """Start a Raft replica from `wal` as a restart would, and say its term and vote."""
    cfg = NodeConfig("r0", ("r0", "r1", "r2"), RaftOptions(), random.Random(1))
    raft = RaftProtocol(cfg)
    raft.start(0.0, wal)
    return raft.term, raft.vote


def test_a_record_persisted_before_a_compaction_never_lands_after_it() -> None:
    # One input: the replica voted in term 3 (persisted), then moved to term 4 and voted
    # for r2, and compacts with its complete state, which holds the term-4 vote.
    old_style = Ready()
    old_style.persist.append(HardState(3, "r1"))
    old_style.compact = [HardState(4, "r2")]  # the old API: set by hand, persist not cleared
    # The runtime appends `persist` after the rewrite: the stale term-3 vote replays last,
    # and the restarted replica is back in term 3, free to vote again in term 4 (the bug
    # a protocol avoided only by clearing `persist` itself).
    assert recovered_hard_state(wal_after([], old_style)) == (3, "r1")

    out = Ready()
    out.persist.append(HardState(3, "r1"))
    out.compact_to([HardState(4, "r2")])
    out.persist.append(HardState(5, None))  # after the compaction: appended after it
    assert wal_after([HardState(2, None)], out) == [HardState(4, "r2"), HardState(5, None)]
    assert recovered_hard_state(wal_after([], out)) == (5, None)


def test_merge_keeps_records_ordered_around_a_later_compaction() -> None:
    earlier = Ready()
    earlier.persist.append(HardState(3, "r1"))
    earlier.persist_after.append(HardState(3, "r1"))  # a lazy record (EPaxos' Commit)
    later = Ready()
    later.compact_to([HardState(4, "r2")])
    later.persist.append(HardState(4, "r2"))
    earlier.merge(later)
    # Everything persisted before the compaction is inside it: nothing older replays after
    # it (the old merge left the earlier batch's lazy records after the rewrite).
    assert wal_after([], earlier) == [HardState(4, "r2"), HardState(4, "r2")]
    assert recovered_hard_state(wal_after([], earlier)) == (4, "r2")

    # A compaction followed by a later batch's records: those come after the rewrite.
    first = Ready()
    first.compact_to([HardState(4, "r2")])
    second = Ready()
    second.persist.append(HardState(5, "r0"))
    first.merge(second)
    assert wal_after([], first) == [HardState(4, "r2"), HardState(5, "r0")]


def test_the_fence_is_raised_by_any_record_that_is_not_overtakable() -> None:
    out = Ready()
    out.send_parallel("r1", PreAccept(0, 0, 1, (), 0, (0, 0, 0)))
    out.persist.append(HardState(2, "r0"))  # no raise_barrier(): the seal sees the vote
    assert out.seal().barrier and out.parallel == [] and len(out.messages) == 1

    own = Ready()
    own.persist_overtakable(HardState(2, "r0"))  # what the parallel message carries
    own.send_parallel("r1", PreAccept(0, 0, 1, (), 0, (0, 0, 0)))
    assert not own.seal().barrier and len(own.parallel) == 1
    # Merging seals both sides: a vote in a batch built by hand fences it all the same.
    vote = Ready()
    vote.persist.append(HardState(3, "r1"))
    vote.send_parallel("r2", PreAccept(0, 0, 2, (), 0, (0, 0, 0)))
    own.merge(vote)
    assert own.barrier and [dst for dst, _ in own.parallel] == ["r1"]
    assert [dst for dst, _ in own.messages] == ["r2"]


def test_an_epaxos_proposal_overtakes_its_own_vote_but_never_a_reservation() -> None:
    cfg = NodeConfig("r0", ("r0", "r1", "r2"), EPaxosOptions(batch=1), random.Random(1))
    ep = EPaxosProtocol(cfg)
    ep.start(0.0, [])

    def propose(rid: str) -> Ready:
        cmd = Command(request_id=rid, client="c1", op="put", key="k", value=rid)
        return ep.on_client(0.0, "c1", ClientRequest(cmd))

    first = propose("w1")  # reserves instance numbers: a durable record that fences
    assert first.barrier and first.parallel == []
    assert {type(m) for _, m in first.messages} == {PreAccept}
    second = propose("w2")  # inside the reservation: only its own vote is persisted
    assert not second.barrier and {type(m) for _, m in second.parallel} == {PreAccept}
