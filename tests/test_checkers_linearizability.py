"""Linearizability: known good and bad kv histories, info operations, cas, the evidence,
and a brute-force oracle on small random histories."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from labctl.checkers.history import Operation, pair_history
from labctl.checkers.linearizability import (
    LinearizabilityChecker,
    check_history,
    check_key,
    check_operations,
)


class History:
    """Builds history.jsonl records: one `op` call per operation."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.n = 0

    def op(
        self,
        proc: str,
        kind: str,
        call: float,
        ret: float | None,
        status: str = "ok",
        value: str | None = None,
        expected: str | None = None,
        key: str = "x",
    ) -> str:
        self.n += 1
        rid = f"{proc}:{self.n}"
        invoke = {"type": "invoke", "t": call, "process": proc, "request_id": rid, "op": kind,
                  "key": key}  # fmt: skip
        if kind != "get":
            invoke["value"] = value
        if kind == "cas":
            invoke["expected"] = expected
        self.records.append(invoke)
        if ret is not None:  # None: never completed (the run ended first)
            done = {"type": status, "t": ret, "process": proc, "request_id": rid, "op": kind,
                    "key": key, "seq": None}  # fmt: skip
            if kind == "get":
                done["value"] = value
            self.records.append(done)
        return rid

    def check(self) -> list:
        return check_history(sorted(self.records, key=lambda r: r["t"]))


def test_sequential_history_is_linearizable() -> None:
    h = History()
    h.op("c0", "get", 0, 1, value=None)
    h.op("c0", "put", 2, 3, value="1")
    h.op("c1", "get", 4, 5, value="1")
    h.op("c1", "cas", 6, 7, expected="1", value="2")
    h.op("c0", "get", 8, 9, value="2")
    assert h.check() == []


def test_concurrent_read_may_see_old_or_new() -> None:
    for seen in ("1", "2"):
        h = History()
        h.op("c0", "put", 0, 1, value="1")
        h.op("c0", "put", 2, 6, value="2")
        h.op("c1", "get", 3, 4, value=seen)
        assert h.check() == [], seen


def test_stale_read_after_an_acknowledged_write() -> None:
    h = History()
    h.op("c0", "put", 0, 1, value="1")
    h.op("c0", "put", 2, 3, value="2")
    stale = h.op("c1", "get", 4, 5, value="1")
    (v,) = h.check()
    assert (v.kind, v.t, v.nodes) == ("nonlinearizable", 5, ["c1"])
    assert v.evidence["stuck"]["request_id"] == stale
    assert v.evidence["value"] == "2"
    assert [o["value"] for o in v.evidence["linearized"]] == ["1", "2"]
    assert "get c1:3 read '1'" in v.detail


def test_stuck_window_names_the_pending_operations() -> None:
    h = History()
    h.op("c0", "put", 0, 1, value="1")
    h.op("c0", "put", 2, 3, value="2")
    h.op("c2", "put", 3.5, 9, value="3")  # concurrent with the read, but no help
    stale = h.op("c1", "get", 4, 5, value="1")
    for i in range(20):  # a long tail that must not appear in the evidence
        h.op("c0", "put", 10 + i, 10.5 + i, value=f"t{i}")
    (v,) = h.check()
    ev = v.evidence
    assert ev["stuck"]["request_id"] == stale and ev["key"] == "x"
    window = [o["value"] for o in ev["linearized"] + ev["pending"]]
    assert window == ["1", "2", "3"]
    assert v.nodes == ["c1"] or v.nodes == ["c1", "c2"]


def test_info_write_that_explains_a_later_read() -> None:
    h = History()
    h.op("c0", "put", 0, 1, value="1")
    h.op("c1", "put", 2, 4, status="info", value="2")  # timed out...
    h.op("c2", "get", 10, 11, value="2")  # ...but it happened
    h.op("c2", "get", 12, 13, value="2")
    assert h.check() == []


def test_info_write_that_never_happened() -> None:
    h = History()
    h.op("c0", "put", 0, 1, value="1")
    h.op("c1", "put", 2, 4, status="info", value="2")
    h.op("c2", "get", 10, 11, value="1")
    assert h.check() == []


def test_info_write_cannot_happen_twice() -> None:
    # Once a read saw the info write's value, a later read of the older value is stale.
    h = History()
    h.op("c0", "put", 0, 1, value="1")
    h.op("c1", "put", 2, 4, status="info", value="2")
    h.op("c2", "get", 5, 6, value="2")
    stale = h.op("c2", "get", 7, 8, value="1")
    (v,) = h.check()
    assert v.evidence["stuck"]["request_id"] == stale


def test_info_write_cannot_take_effect_before_its_invoke() -> None:
    h = History()
    h.op("c0", "get", 0, 1, value="2")
    h.op("c1", "put", 2, 3, status="info", value="2")
    assert len(h.check()) == 1


def test_operations_open_at_the_end_are_info() -> None:
    h = History()
    h.op("c0", "put", 0, None, value="7")  # never completed
    h.op("c1", "get", 1, 2, value="7")
    assert h.check() == []
    ops = pair_history(h.records)
    assert [o.status for o in ops] == ["ok", "info"]


def test_cas_semantics() -> None:
    h = History()
    h.op("c0", "put", 0, 1, value="1")
    h.op("c0", "cas", 2, 3, expected="1", value="2")
    h.op("c1", "cas", 4, 5, status="fail", expected="1", value="9")  # did not happen
    h.op("c1", "get", 6, 7, value="2")
    assert h.check() == []
    bad = History()
    bad.op("c0", "put", 0, 1, value="1")
    wrong = bad.op("c0", "cas", 2, 3, expected="5", value="2")  # acknowledged, but 1 != 5
    (v,) = bad.check()
    assert v.evidence["stuck"]["request_id"] == wrong and "expected '5'" in v.detail


def test_cas_on_an_absent_key_and_info_cas_chain() -> None:
    h = History()
    h.op("c0", "cas", 0, 1, expected=None, value="1")
    h.op("c1", "cas", 2, 3, status="info", expected="1", value="2")
    h.op("c2", "cas", 4, 5, status="info", expected="2", value="3")
    h.op("c0", "get", 6, 7, value="3")  # needs both info cas to have happened, in order
    assert h.check() == []
    h.op("c0", "get", 8, 9, value="2")  # and then "2" again is stale
    assert len(h.check()) == 1


def test_info_reads_and_failed_writes_constrain_nothing() -> None:
    h = History()
    h.op("c0", "put", 0, 1, value="1")
    h.op("c1", "get", 2, 3, status="info", value="zzz")
    h.op("c1", "put", 4, 5, status="fail", value="9")
    h.op("c0", "get", 6, 7, value="1")
    assert h.check() == []


def test_keys_are_checked_apart() -> None:
    h = History()
    h.op("c0", "put", 0, 1, value="1", key="x")
    h.op("c0", "put", 0, 1, value="1", key="y")
    h.op("c1", "get", 2, 3, value=None, key="y")  # stale on y only
    h.op("c1", "get", 2, 3, value="1", key="x")
    (v,) = h.check()
    assert v.evidence["key"] == "y"
    results = check_operations(pair_history(h.records))
    assert {k: r.status for k, r in results.items()} == {"x": "ok", "y": "violation"}


def test_budget_gives_unknown_not_a_verdict() -> None:
    h = History()
    for i in range(12):  # many concurrent writes and a read nobody can explain
        h.op(f"c{i}", "put", 0, 10, value=str(i))
    h.op("c99", "get", 11, 12, value="nope")
    (op_list,) = [pair_history(h.records)]
    assert check_key("x", op_list, budget=50).status == "unknown"
    assert check_key("x", op_list).status == "violation"


def test_checker_collects_live_and_searches_at_finish() -> None:
    h = History()
    h.op("c0", "put", 0, 1, value="1")
    h.op("c1", "get", 2, 3, value=None)
    c = LinearizabilityChecker()
    assert [v for r in h.records for v in c.on_history(r)] == []
    (v,) = c.finish()
    assert v.kind == "nonlinearizable"
    assert c.results["x"].status == "violation" and c.unknown_keys == []


def test_ten_thousand_overlapping_operations_on_one_key() -> None:
    # Built to be linearizable: every operation takes effect at the midpoint of its
    # interval, and each overlaps about five others.
    h = History()
    effects = []
    for i in range(10000):
        call, ret = i * 0.25, i * 0.25 + 1.0 + (i % 7) * 0.1
        effects.append(((call + ret) / 2, i, call, ret))
    value = None
    for _, i, call, ret in sorted(effects):
        if i % 3:
            h.op(f"c{i % 8}", "put", call, ret, value=str(i))
            value = str(i)
        else:
            h.op(f"c{i % 8}", "get", call, ret, value=value)
    result = check_operations(pair_history(h.records))["x"]
    assert result.status == "ok"


# -- a brute-force oracle on small histories ----------------------------------------------


def brute_force(ops: list[Operation]) -> bool:
    """Try every order (and every subset of info operations) that respects real time."""
    ops = [o for o in ops if o.status != "fail"]
    ret = [o.complete_t if o.status == "ok" else math.inf for o in ops]

    def step(state: str | None, o: Operation) -> tuple[bool, str | None]:
        if o.op == "put":
            return True, o.value
        if o.op == "get":
            return state == o.value, state
        return (state == o.expected, o.value if state == o.expected else state)

    def go(rem: frozenset[int], state: str | None) -> bool:
        if all(ops[i].status == "info" for i in rem):
            return True
        for i in rem:
            if any(ret[j] < ops[i].invoke_t for j in rem if j != i):
                continue  # something still pending had returned before i was invoked
            rest = rem - {i}
            if ops[i].status == "info" and go(rest, state):
                return True
            ok, new = step(state, ops[i])
            if ok and go(rest, new):
                return True
        return False

    return go(frozenset(range(len(ops))), None)


VALUES = st.sampled_from(["a", "b", "c"])


@st.composite
def small_histories(draw: st.DrawFn) -> list[Operation]:
    n = draw(st.integers(1, 6))
    ops = []
    for i in range(n):
        kind = draw(st.sampled_from(["put", "get", "cas"]))
        call = draw(st.integers(0, 8))
        status = draw(st.sampled_from(["ok", "ok", "ok", "info", "fail"]))
        value = draw(st.one_of(st.none(), VALUES) if kind == "get" else VALUES)
        expected = draw(st.one_of(st.none(), VALUES)) if kind == "cas" else None
        ops.append(Operation(
            request_id=f"c{i}:{i}", process=f"c{i}", op=kind, key="x", value=value,
            expected=expected, invoke_t=float(call),
            complete_t=None if status == "info" else float(call + draw(st.integers(0, 4))),
            status=status,
        ))  # fmt: skip
    return ops


@settings(max_examples=400, deadline=None)
@given(small_histories())
def test_agrees_with_brute_force(ops: list[Operation]) -> None:
    expected = brute_force(ops)
    assert (check_key("x", ops).status == "ok") == expected


def test_brute_force_sees_both_verdicts() -> None:
    # The oracle must itself be able to say yes and no, or the property test proves little.
    put = Operation("c0:1", "c0", "put", "x", "a", None, 0.0, 1.0, "ok")
    good = Operation("c1:1", "c1", "get", "x", "a", None, 2.0, 3.0, "ok")
    bad = Operation("c1:1", "c1", "get", "x", None, None, 2.0, 3.0, "ok")
    assert brute_force([put, good]) and not brute_force([put, bad])
