"""The lost-write checker's index -> (request id, time) columns answer as a dict would."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from labctl.checkers.index_column import IndexColumn


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 300), st.sampled_from(["a", "b", "c"])), max_size=400))
def test_a_column_answers_what_a_dict_of_the_last_writes_would(
    writes: list[tuple[int, str]],
) -> None:
    column, plain = IndexColumn(), {}
    for t, (index, rid) in enumerate(writes):
        column.set(index, rid, float(t))
        plain[index] = (rid, float(t))
    assert {i: column.get(i) for i in range(-1, 302) if column.get(i) is not None} == plain
    assert len(column) == len(plain)


def test_in_order_indices_after_a_snapshots_sparse_ones_are_one_run() -> None:
    column = IndexColumn()
    for i in (10, 400, 9000):  # a snapshot's image: old, sparse indices
        column.set(i, f"s{i}", 0.0)
    for i in range(10_001, 30_001):  # the log from the snapshot on
        column.set(i, f"r{i}", 1.0)
    assert len(column.other) == 3 and len(column.rids) == 20_000
    assert column.get(400) == ("s400", 0.0) and column.get(30_000) == ("r30000", 1.0)
