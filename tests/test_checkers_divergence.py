"""Divergence: different commands at one index on two replicas; agreement is not flagged."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from labctl.checkers.base import op_label
from labctl.checkers.divergence import DivergenceChecker


def applied(src: str, t: float, index: int, rid: str, op: str = "put") -> dict[str, Any]:
    return {"kind": "applied", "src": src, "t": t, "index": index, "term": 1,
            "request_id": rid, "op": op, "key": "x", "value": "1", "duplicate": False,
            "result": "ok"}  # fmt: skip


def feed(records: list[dict[str, Any]]) -> list:
    c = DivergenceChecker()
    return [v for r in records for v in c.on_event(r)]


def test_different_request_ids_at_one_index() -> None:
    (v,) = feed([applied("r1", 1, 3, "c0:1"), applied("r0", 2, 3, "c1:9")])
    assert (v.kind, v.t, v.nodes) == ("divergence", 2, ["r0", "r1"])
    assert v.evidence == {"index": 3, "applied": {"r0": "c1:9", "r1": "c0:1"}}
    assert "index 3" in v.detail and "c0:1" in v.detail and "c1:9" in v.detail


def test_a_get_in_the_log_counts_like_any_command() -> None:
    assert len(feed([applied("r0", 1, 2, "c0:1", "get"), applied("r1", 2, 2, "c1:1")])) == 1


def test_reported_once_per_index() -> None:
    found = feed([applied("r0", 1, 2, "a"), applied("r1", 2, 2, "b"), applied("r2", 3, 2, "c")])
    assert len(found) == 1


def test_near_miss_same_commands_everywhere_and_replays() -> None:
    records = [applied(r, t, i, f"c0:{i}") for t, (r, i) in enumerate(
        [("r0", 1), ("r1", 1), ("r0", 2), ("r2", 1), ("r1", 2), ("r0", 1)])]  # fmt: skip
    assert feed(records) == []


# -- per_key (EPaxos): only the order of commands on one key must agree --------------------


def on_key(src: str, t: float, index: int, rid: str, key: str) -> dict[str, Any]:
    return {**applied(src, t, index, rid), "key": key}


def feed_per_key(records: list[dict[str, Any]]) -> list:
    c = DivergenceChecker(per_key=True)
    return [v for r in records for v in c.on_event(r)]


def test_per_key_non_conflicting_commands_may_execute_in_any_order() -> None:
    # r0 runs a (key x) then b (key y); r1 runs b then a: each key's order agrees.
    records = [on_key("r0", 1, 1, "a", "x"), on_key("r0", 2, 2, "b", "y"),
               on_key("r1", 3, 1, "b", "y"), on_key("r1", 4, 2, "a", "x")]  # fmt: skip
    assert feed_per_key(records) == []
    assert len(feed(records)) == 2  # the total-order check would call that divergence


def test_per_key_conflicting_commands_in_different_orders_diverge_once_per_key() -> None:
    records = [on_key("r0", 1, 1, "a", "x"), on_key("r0", 2, 2, "b", "x"),
               on_key("r1", 3, 1, "b", "x"), on_key("r1", 4, 2, "a", "x"),
               on_key("r2", 5, 1, "b", "x")]  # fmt: skip
    (v,) = feed_per_key(records)
    assert (v.kind, v.t, v.nodes) == ("divergence", 3, ["r0", "r1"])
    assert v.evidence == {"key": "x", "position": 1, "applied": {"r0": "a", "r1": "b"}}
    assert "key 'x'" in v.detail


def test_per_key_a_restart_re_executes_from_index_1_without_a_false_alarm() -> None:
    records = [on_key("r0", 1, 1, "a", "x"), on_key("r0", 2, 2, "b", "x"),
               on_key("r0", 3, 1, "a", "x"), on_key("r0", 4, 2, "b", "x"),
               on_key("r0", 5, 3, "c", "x"), on_key("r1", 6, 1, "a", "x")]  # fmt: skip
    assert feed_per_key(records) == []
    # ... but a restarted replica that now runs b first is caught.
    assert len(feed_per_key([*records, on_key("r0", 7, 1, "b", "x")])) == 1


# -- the compact rows against the plain per-node table ----------------------------------------


def _plain(records: list[dict[str, Any]]) -> list[tuple[int, list[str], str]]:
    """The checker as it was before agreed indices were kept as one row (a dict per index
    of node -> request id and of node -> label): what it reported, in order."""
    by_index: dict[int, dict[str, str]] = {}
    labels: dict[int, dict[str, str]] = {}
    reported: set[int] = set()
    out = []
    for rec in records:
        node, index, rid = rec["src"], rec["index"], rec["request_id"]
        applied = by_index.setdefault(index, {})
        applied[node] = rid
        if index in reported:
            continue
        said = labels.setdefault(index, {})
        said[node] = op_label(rec)
        other = next((n for n, r in applied.items() if r != rid), None)
        if other is None:
            continue
        reported.add(index)
        del labels[index]
        (a, _), (b, _) = sorted([(other, applied[other]), (node, rid)])
        told = {n: f"{said.get(n, '?')} ({applied[n]})" for n in (other, node)}
        out.append((index, [a, b], f"index {index} holds {told[a]} on {a} but {told[b]} on {b}"))
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["r0", "r1", "r2"]), st.integers(1, 6),
                          st.sampled_from(["a", "b"]), st.booleans()), max_size=40))  # fmt: skip
def test_agreed_rows_report_what_the_per_node_table_did(
    steps: list[tuple[str, int, str, bool]],
) -> None:
    """Replays, re-applies with fewer fields (a snapshot's image) and disagreements in any
    order: the same violations, with the same sentences."""
    records = []
    for t, (node, index, rid, bare) in enumerate(steps):
        rec = applied(node, t, index, f"{rid}{index}")
        if bare:
            del rec["key"], rec["value"]
        records.append(rec)
    assert [(v.evidence["index"], v.nodes, v.detail) for v in feed(records)] == _plain(records)
