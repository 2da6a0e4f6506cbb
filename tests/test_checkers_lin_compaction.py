"""The live linearizability checker cuts each key's history at quiescent points: what it
holds stays bounded over a long run, and its verdicts are the whole-history search's (the
same sentence and evidence too, unless an info write straddles a cut: then the same
violation, possibly shown with another witness)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labctl.checkers import quiescent_cut as qc
from labctl.checkers.history import pair_history
from labctl.checkers.linearizability import LinearizabilityChecker, check_operations


def _records(ops: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """(proc, op, call, ret, status, value, expected, key) tuples as history records, in
    time order (a completion at its return, an invoke at its call)."""
    out: list[tuple[float, int, dict[str, Any]]] = []
    for n, (proc, op, call, ret, status, value, expected, key) in enumerate(ops):
        rid = f"{proc}:{n}"
        inv = {"type": "invoke", "t": call, "process": proc, "request_id": rid, "op": op,
               "key": key, "value": None if op == "get" else value,
               "expected": expected}  # fmt: skip
        out.append((call, 0, inv))
        if ret is not None:
            done = {"type": status, "t": ret, "process": proc, "request_id": rid}
            if op == "get":
                done["value"] = value
            out.append((ret, 1, done))
    return [r for _, _, r in sorted(out, key=lambda x: (x[0], x[1]))]


def _sequential(n: int, key: str = "x", t0: float = 0.0) -> list[tuple[Any, ...]]:
    """n operations one after the other on `key`, each get reading the last put."""
    ops: list[tuple[Any, ...]] = []
    last = None
    for i in range(n):
        t = t0 + i * 0.01
        if i % 2 == 0:
            last = f"v{i}"
            ops.append(("c0", "put", t, t + 0.005, "ok", last, None, key))
        else:
            ops.append(("c1", "get", t, t + 0.005, "ok", last, None, key))
    return ops


def _feed(records: list[dict[str, Any]]) -> LinearizabilityChecker:
    checker = LinearizabilityChecker(wall_clock=False)
    for rec in records:
        checker.on_history(rec)
    return checker


def _whole(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The verdict of the search over the whole history (no cuts), per key."""
    results = check_operations(pair_history(records))
    return {k: (r.status, r.ops, r.violation) for k, r in results.items()}


def test_the_live_history_stays_bounded_after_many_settled_operations() -> None:
    ops = _sequential(40_000)
    checker = _feed(_records(ops))
    assert len(checker.history["x"]) <= qc.TRY_EVERY + 400  # what came since the last cut
    assert checker.compacted >= 38_000
    assert checker.finish() == []
    result = checker.results["x"]
    assert (result.status, result.ops) == ("ok", 40_000)  # counted as if all were searched


def test_a_stale_read_of_a_long_compacted_value_is_still_reported_as_before() -> None:
    ops = _sequential(20_000)
    end = ops[-1][3]
    # Long after v10 was overwritten (and cut away), a read returns it.
    ops.append(("c2", "get", end + 5.0, end + 5.01, "ok", "v10", None, "x"))
    ops += _sequential(3000, t0=end + 6.0)
    records = _records(ops)
    checker = _feed(records)
    assert checker.compacted > 15_000
    found = checker.finish()
    whole = _whole(records)["x"]
    assert whole[0] == "violation"
    assert found == [whole[2]]  # the same sentence, "after N operations", and evidence
    assert "read 'v10'" in found[0].detail
    assert checker.results["x"].ops == whole[1]


def test_the_violation_is_reported_live_once_its_key_is_searched() -> None:
    ops = _sequential(5000)
    ops.append(("c2", "get", 100.0, 100.01, "ok", "v2", None, "x"))
    ops.append(("c0", "put", 102.0, 102.01, "ok", "later", None, "x"))  # moves `newest` on
    checker = _feed(_records(ops))
    # Held while a late record might still explain it: the records are 2 s past it.
    assert checker.check_online() == []
    checker.on_history({"type": "invoke", "t": 210.0, "process": "c0", "request_id": "m",
                        "op": "get", "key": "y"})  # fmt: skip
    live = checker.check_online()
    assert [v.kind for v in live] == ["nonlinearizable"]
    assert checker.finish() == []  # already reported live: not twice


def test_an_operation_invoked_before_its_keys_cut_makes_the_key_unknown_not_a_guess() -> None:
    records = _records(_sequential(4000))
    cut_records = records[: len(records) - 50]
    invoke = {"type": "invoke", "t": 1.0, "process": "c9", "request_id": "late", "op": "put",
              "key": "x", "value": "z"}  # fmt: skip
    late = [invoke, {"type": "ok", "t": 1.0001, "process": "c9", "request_id": "late"}]
    checker = _feed(cut_records + late)
    assert checker.cuts["x"].t > 1.0001
    checker.finish()
    assert checker.results["x"].status == "unknown"
    assert checker.unknown == {"x": "late"}


# -- against the whole-history search, on random histories ------------------------------------


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """Random concurrent histories over two keys: bursts of overlapping operations with
    quiet gaps between them (where cuts can fall), some info and fail ones, reads that see
    a recent value (or, now and then, an old one)."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = random.Random(seed)
    ops: list[tuple[Any, ...]] = []
    t = 0.0
    written: dict[str, list[str]] = {"a": [], "b": []}
    for burst in range(rng.randint(5, 40)):
        t += rng.choice([0.001, 0.5, 3.0])
        for i in range(rng.randint(1, 3)):
            key = rng.choice("ab")
            call = t + rng.random() * 0.05
            ret = call + rng.random() * 0.05
            status = rng.choices(["ok", "info", "fail"], [0.85, 0.1, 0.05])[0]
            kind = rng.choice(["put", "put", "get", "cas"])
            proc = f"p{i}"
            if kind == "get":
                seen = written[key]
                value = (rng.choice(seen) if rng.random() < 0.02 else seen[-1]) if seen else None
                ops.append((proc, "get", call, ret, status, value, None, key))
            else:
                value = f"{key}{burst}-{i}"
                expected = written[key][-1] if kind == "cas" and written[key] else None
                ops.append((proc, kind, call, None if status == "info" and rng.random() < 0.5
                            else ret, status, value, expected, key))  # fmt: skip
                written[key].append(value)
    return ops


@settings(max_examples=300, deadline=None)
@given(histories())
def test_cut_histories_give_the_whole_history_verdict(ops: list[tuple[Any, ...]]) -> None:
    records = _records(ops)
    with pytest.MonkeyPatch.context() as mp:  # cut as often as possible
        mp.setattr(qc, "MIN_PREFIX", 2)
        mp.setattr(qc, "TRY_EVERY", 3)
        mp.setattr(qc, "HORIZON", 0.2)
        checker = _feed(records)
        checker.finish()
    whole = _whole(records)
    got = {k: (r.status, r.ops, r.violation) for k, r in checker.results.items()}
    assert {k: v[:2] for k, v in got.items()} == {k: v[:2] for k, v in whole.items()}
    if not any(o[1] != "get" and o[4] == "info" for o in ops):
        assert got == whole  # the same sentence and evidence, too
    else:
        # An info write carried over a cut may take effect in the prefix for the whole
        # search and not for the cut one: the same violation, perhaps another witness.
        assert {k: v[2] and v[2].kind for k, v in got.items()} == {
            k: v[2] and v[2].kind for k, v in whole.items()
        }


def _open_loop(
    n: int, rate: float, seed: int, lo: float = 0.001, hi: float = 0.005, key: str = "x",
    clients: int = 64,
) -> list[tuple[Any, ...]]:
    """n linearizable operations on `key` arriving at `rate` a second from many clients,
    as a busy lab's workload makes them: each takes 1 to 5 ms and takes effect at a
    random point inside its call, a get reading the value last put before that point."""
    rng = random.Random(seed)
    made, t = [], 0.0
    for i in range(n):
        t += rng.expovariate(rate)
        ret = t + lo + rng.random() * (hi - lo)
        made.append((t + rng.random() * (ret - t), t, ret, i))
    ops: list[tuple[Any, ...]] = []
    last = None
    for _, call, ret, i in sorted(made):
        if rng.random() < 0.5:
            last = f"v{i}"
            ops.append((f"c{i % clients}", "put", call, ret, "ok", last, None, key))
        else:
            ops.append((f"c{i % clients}", "get", call, ret, "ok", last, None, key))
    return ops


def test_a_busy_key_whose_latest_quiescent_point_ends_in_overlapping_writes_is_cut() -> None:
    # 200 operations a second on one key, 5 to 20 ms each: the latest quiescent point
    # often follows two writes at once (its value unknown). The checker cuts at an
    # earlier point instead of waiting for a luckier moment.
    ops = _open_loop(30_000, rate=200.0, seed=3, lo=0.005, hi=0.02)
    checker = _feed(_records(ops))
    end = max(o[3] for o in ops)
    recent = sum(1 for o in ops if o[3] > end - qc.HORIZON - 1.0)  # not yet cuttable
    assert len(checker.history["x"]) <= recent + 2 * qc.TRY_EVERY
    assert checker.compacted >= 30_000 - len(checker.history["x"])
    assert checker.finish() == []
    assert (checker.results["x"].status, checker.results["x"].ops) == ("ok", 30_000)


def test_a_key_whose_live_search_once_ran_out_of_budget_is_still_cut() -> None:
    # A busy moment (the live search's budget is half a second of wall time) leaves a key
    # "hard", waiting for the end. It is still cut as it grows, and searched live again:
    # left whole, a soak's busy keys grew by every operation until `labctl down`.
    from labctl.checkers.linearizability import Budget

    records = _records(_sequential(20_000))
    checker = LinearizabilityChecker(wall_clock=False)
    normal = checker.online_budget
    checker.online_budget = Budget(steps=1)  # the busy moment
    for rec in records[:6000]:
        checker.on_history(rec)
    checker.check_online()
    assert "x" in checker.hard
    checker.online_budget = normal
    for n, rec in enumerate(records[6000:]):
        checker.on_history(rec)
        if n % 1000 == 0:
            checker.check_online()
    assert "x" not in checker.hard
    assert len(checker.history["x"]) <= qc.TRY_EVERY + 600
    assert checker.finish() == []
    assert (checker.results["x"].status, checker.results["x"].ops) == ("ok", 20_000)


def _arriving(records: list[dict[str, Any]], lagging: set[str], lag: float) -> list[dict[str, Any]]:
    """The records in the order the supervisor takes them in when the clients in `lagging`
    deliver theirs `lag` seconds late (each record keeps its client's own time)."""
    def arrival(r: dict[str, Any]) -> float:
        return r["t"] + (lag if r["process"] in lagging else 0.0)

    return sorted(records, key=arrival)


def _live(records: list[dict[str, Any]], every: int = 400) -> tuple[LinearizabilityChecker, list]:
    checker = LinearizabilityChecker(wall_clock=False)
    found, done = [], 0
    for rec in records:
        checker.on_history(rec)
        if rec["type"] != "invoke":
            done += 1
            if done % every == 0:
                found += checker.check_online()
    return checker, found


def test_a_client_whose_records_always_come_late_makes_no_live_violation() -> None:
    """Seen in an EPaxos soak on a loaded machine: one client's records reached the
    supervisor 1.7 s behind the others', all the time. Every live search of a key then met
    some read of a value whose write had not arrived, each explained once it did. The
    key stayed suspect from one such read to the next, and 5 s after the first the live
    checker reported the current one: a violation in a linearizable history."""
    ops = _open_loop(8000, rate=400.0, seed=5, lo=0.002, hi=0.008, clients=4)
    records = _arriving(_records(ops), {"c2"}, lag=1.7)
    checker, found = _live(records)
    assert found == []
    assert checker.finish() == []
    # A real violation among the same late records is still reported live.
    end = max(o[3] for o in ops)
    stale = [*ops, ("c2", "get", end + 1.0, end + 1.01, "ok", "v10", None, "x"),
             *_open_loop(3000, rate=400.0, seed=6, lo=0.002, hi=0.008, clients=4)[1:]]  # fmt: skip
    # (the second run's times are shifted past the stale read)
    shift = end + 2.0
    stale = [*stale[: len(ops) + 1],
             *((p, op, c + shift, r + shift, s, v, e, k) for p, op, c, r, s, v, e, k in
               stale[len(ops) + 1:])]  # fmt: skip
    checker, found = _live(_arriving(_records(stale), {"c2"}, lag=1.7))
    assert [v.detail.split(",")[0] for v in found] == ["key 'x': get c2:8000 read 'v10'"]
