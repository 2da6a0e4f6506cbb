"""CheckerSet: one record at a time, live, and check_run_dir offline give the same verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from labctl.checkers import CheckerConfig, CheckerSet, Violation, check_run_dir


def ev(kind: str, src: str, t: float, **data: Any) -> dict[str, Any]:
    return {"t": t, "src": src, "kind": kind, **data}


def applied(src: str, t: float, index: int, rid: str, op: str = "put", key: str = "x",
            value: str = "1", duplicate: bool = False) -> dict[str, Any]:  # fmt: skip
    return ev("applied", src, t, index=index, term=1, request_id=rid, op=op, key=key,
              value=value, duplicate=duplicate, result="ok")  # fmt: skip


def broker(t: float, node: str, token: int, highest: int, rid: str, seq: int) -> dict[str, Any]:
    return ev("broker.write", "broker", t, token=token, node=node, seq=seq, request_id=rid,
              accepted=True, highest=highest, **{"from": node})  # fmt: skip


def hist(kind: str, t: float, rid: str, op: str, **data: Any) -> dict[str, Any]:
    return {"type": kind, "t": t, "process": rid.split(":")[0], "request_id": rid, "op": op,
            **data}  # fmt: skip


# A naive run gone wrong in every way the lab knows, plus the noise a real run carries.
EVENTS = [
    ev("lab.ready", "supervisor", 0.0, nodes=["r0", "r1", "r2"], protocol="naive"),
    ev("became_leader", "r0", 0.1, term=1, how="initial"),
    ev("lease", "r0", 0.2, term=1, expiry=100.2, expiry_true=1.2),
    applied("r0", 0.3, 1, "c0:1", value="1"),
    applied("r1", 0.31, 1, "c0:1", value="1"),
    ev("node.status", "r0", 0.35, role="leader", term=1, leader="r0", commit_index=1),
    broker(0.4, "r0", token=1, highest=1, rid="c0:1", seq=1),
    ev("fault", ["r0"], 0.5, fault="partition", describe="partition r0 <-> r1,r2"),
    ev("became_leader", "r1", 0.9, term=1, how="self-promoted"),  # split brain
    ev("lease", "r1", 1.0, term=1, expiry=101.0, expiry_true=2.0),  # overlaps r0's
    broker(1.05, "r1", token=2, highest=2, rid="c1:2", seq=2),
    broker(1.1, "r0", token=1, highest=2, rid="c0:3", seq=3),  # zombie
    applied("r0", 1.2, 2, "c0:3", op="order", key="ALPHA"),
    applied("r1", 1.3, 2, "c1:2"),  # divergence at index 2
    applied("r0", 1.4, 3, "c0:3", op="order", key="ALPHA", duplicate=True),  # double buy
    ev("became_leader", "r2", 1.5, term=2, how="self-promoted"),
    applied("r2", 1.6, 1, "c0:1"),
    applied("r2", 1.7, 2, "c1:2"),
    applied("r2", 1.8, 3, "c1:4"),
    ev("process.exit", "supervisor", 1.9, node="r0", code=-9),
    {"t": 2.0, "src": "supervisor", "kind": "violation", "detail": "written by the lab"},
]
HISTORY = [
    hist("invoke", 0.25, "c0:1", "put", key="x", value="1"),
    hist("ok", 0.32, "c0:1", "put", key="x", seq=1),
    hist("invoke", 1.0, "c1:2", "put", key="x", value="2"),
    hist("invoke", 1.01, "c0:3", "order", key="ALPHA", value="riya:buy:200"),
    hist("ok", 1.31, "c1:2", "put", key="x", seq=2),
    hist("ok", 1.41, "c0:3", "order", key="ALPHA", seq=2),  # lost: not on final leader r2
    hist("invoke", 1.5, "c2:1", "get", key="x"),
    hist("ok", 1.55, "c2:1", "get", key="x", value="1"),  # stale: "2" was acknowledged
    hist("invoke", 1.6, "c1:4", "put", key="y", value="5"),
    hist("info", 1.9, "c1:4", "put", key="y"),
]


def run_live(config: Any, events: list, history: list) -> tuple[CheckerSet, list[Violation]]:
    checkers = CheckerSet(config)
    found = []
    # The supervisor interleaves the two streams as they arrive; the verdict must not care.
    for i in range(max(len(events), len(history))):
        if i < len(history):
            found += checkers.on_history(history[i])
        if i < len(events):
            found += checkers.on_event(events[i])
    found += checkers.finish()
    return checkers, found


def write_run(path: Path, protocol: str | None, torn: bool = False) -> Path:
    path.mkdir()
    if protocol is not None:
        (path / "lab.json").write_text(json.dumps({"config": {"protocol": protocol}}))
    events = "".join(json.dumps(r) + "\n" for r in EVENTS)
    if torn:
        events += '{"t": 2.1, "src": "r1", "kind": "appl'  # the lab died mid-line
    (path / "events.jsonl").write_text(events)
    (path / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in HISTORY))
    return path


def test_live_finds_every_kind_as_soon_as_its_evidence_is_complete() -> None:
    checkers, found = run_live({"protocol": "naive"}, EVENTS, HISTORY)
    kinds = [(v.kind, v.t) for v in found]
    assert kinds == [
        ("split-brain", 0.9),
        ("lease-overlap", 1.0),
        ("zombie-write", 1.1),
        ("divergence", 1.3),
        ("duplicate-apply", 1.4),
        ("divergence", 1.8),  # index 3: r0's double buy against r2's c1:4
        ("lost-write", 1.7),  # r2 put c1:2 at index 2, where c0:3 had been
        ("nonlinearizable", 1.55),
    ]
    assert checkers.violations == found
    assert checkers.summary()["counts"]["divergence"] == 2
    lost = next(v for v in found if v.kind == "lost-write")
    assert lost.evidence["request_id"] == "c0:3" and lost.nodes == ["r2"]


def test_live_and_offline_agree(tmp_path: Path) -> None:
    _, live = run_live({"protocol": "naive"}, EVENTS, HISTORY)
    offline = check_run_dir(write_run(tmp_path / "run", "naive"))
    assert offline["violations"] == [v.to_dict() for v in live]
    assert offline["safe"] is False and offline["exactly_once"] is False
    assert offline["records"] == {"events": len(EVENTS), "history": len(HISTORY), "malformed": 0}
    json.dumps(offline)  # all of it is JSON


def test_exactly_once_comes_from_lab_json(tmp_path: Path) -> None:
    naive = check_run_dir(write_run(tmp_path / "naive", "naive"))
    raft = check_run_dir(write_run(tmp_path / "raft", "raft"))
    assert raft["exactly_once"] is True and raft["protocol"] == "raft"
    assert "duplicate-apply" in naive["counts"] and "duplicate-apply" not in raft["counts"]
    bare = check_run_dir(write_run(tmp_path / "bare", None))  # no lab.json: not exactly-once
    assert bare["exactly_once"] is False and bare["violations"] == naive["violations"]


def test_torn_last_line_and_malformed_records_are_counted(tmp_path: Path) -> None:
    out = check_run_dir(write_run(tmp_path / "run", "naive", torn=True))
    assert out["records"]["malformed"] == 1
    checkers = CheckerSet()
    assert checkers.on_event({"kind": "applied", "src": "r0"}) == []
    assert checkers.on_event({"kind": "lease"}) == []
    assert checkers.on_history({"type": "ok"}) == []
    assert checkers.malformed >= 3


def test_a_clean_run_is_safe(tmp_path: Path) -> None:
    events = [
        ev("became_leader", "r0", 0.1, term=1, how="elected"),
        ev("lease", "r0", 0.2, term=1, expiry=5.0, expiry_true=1.0),
        applied("r0", 0.3, 1, "c0:1"),
        applied("r1", 0.4, 1, "c0:1"),
        ev("became_leader", "r1", 1.0, term=2, how="elected"),
        ev("lease", "r1", 1.0, term=2, expiry=6.0, expiry_true=2.0),  # touches, no overlap
        applied("r1", 1.1, 2, "c0:1", duplicate=True),  # answered from the session table
    ]
    history = [hist("invoke", 0.2, "c0:1", "put", key="x", value="1"),
               hist("ok", 1.2, "c0:1", "put", key="x", seq=1)]  # fmt: skip
    checkers, found = run_live(CheckerConfig(exactly_once=True), events, history)
    assert found == [] and checkers.summary()["safe"] is True


def test_misuse_after_finish_raises() -> None:
    checkers = CheckerSet()
    checkers.finish()
    with pytest.raises(RuntimeError):
        checkers.on_event(ev("became_leader", "r0", 1.0, term=1))


def test_live_linearizability_flags_a_stale_read_before_the_run_ends() -> None:
    from labctl.checkers import CheckerSet

    def rec(kind: str, t: float, proc: str, rid: str, op: str, **kw: str) -> dict:
        return {"type": kind, "t": t, "process": proc, "request_id": rid, "op": op, "key": "x",
                **kw}  # fmt: skip

    checkers = CheckerSet({"protocol": "raft"})
    history = [
        rec("invoke", 1.0, "c0", "w1", "put", value="1"),
        rec("ok", 1.1, "c0", "w1", "put"),
        rec("invoke", 1.2, "c0", "w2", "put", value="2"),
        rec("ok", 1.3, "c0", "w2", "put"),
        # A still-open write of "1" would explain the read; completed ones cannot.
        rec("invoke", 1.4, "c1", "r1", "get"),
        rec("ok", 1.5, "c1", "r1", "get", value="1"),
        rec("invoke", 1.6, "c2", "w3", "put", value="3"),  # still open: counted as info
    ]
    for r in history[:4]:
        checkers.on_history(r)
    assert checkers.check_online() == []  # nothing wrong yet
    for r in history[4:]:
        checkers.on_history(r)
    # Held while a late record could still explain it (records are not in time order)...
    assert checkers.check_online() == []
    checkers.on_history(rec("invoke", 4.0, "c3", "r2", "get"))
    assert checkers.check_online() == []  # ...for HORIZON (5 s) of record time
    checkers.on_history(rec("invoke", 7.0, "c3", "r3", "get"))
    found = checkers.check_online()
    assert [v.kind for v in found] == ["nonlinearizable"] and found[0].nodes == ["c1"]
    assert checkers.check_online() == []  # reported once
    at_end = [v.kind for v in checkers.finish()]
    assert "nonlinearizable" not in at_end  # and not again at the end


def test_a_late_invoke_record_that_explains_a_read_is_not_a_live_violation() -> None:
    """c3's invoke of put x=1 reaches the supervisor after the read that saw its value
    (seen in a soak: 50 ms late, under load): no violation, live or at the end."""
    from labctl.checkers import CheckerSet

    def rec(kind: str, t: float, proc: str, rid: str, op: str, **kw: str) -> dict:
        return {"type": kind, "t": t, "process": proc, "request_id": rid, "op": op, "key": "x",
                **kw}  # fmt: skip

    checkers = CheckerSet({"protocol": "raft"})
    checkers.on_history(rec("invoke", 1.0, "c1", "r1", "get"))
    checkers.on_history(rec("ok", 1.2, "c1", "r1", "get", value="1"))
    assert checkers.check_online() == []  # looks impossible: held
    checkers.on_history(rec("invoke", 0.9, "c3", "w1", "put", value="1"))  # the late one
    checkers.on_history(rec("ok", 1.3, "c3", "w1", "put"))
    checkers.on_history(rec("invoke", 9.0, "c4", "r2", "get"))  # records move on
    assert checkers.check_online() == []
    # (No replica applied anything here, so the lost-write checker has its say.)
    assert "nonlinearizable" not in [v.kind for v in checkers.finish()]


def test_a_byzantine_node_s_claims_prove_nothing_but_honest_replicas_are_judged() -> None:
    fault = ev("fault", "supervisor", 0.5, fault="byzantine", node="r3", mode="forge")
    lies = [applied("r3", 1.0, 1, "c0:9"), ev("became_leader", "r3", 1.1, term=1, how="lie")]
    honest = [applied("r0", 1.2, 1, "c0:1"), applied("r1", 1.3, 1, "c0:1")]
    checkers = CheckerSet(CheckerConfig(exactly_once=True))
    found = [v for rec in [fault, *lies, *honest] for v in checkers.on_event(rec)]
    assert found == []
    # Without the fault record the same lies are a divergence.
    checkers = CheckerSet(CheckerConfig(exactly_once=True))
    found = [v for rec in [*lies, *honest] for v in checkers.on_event(rec)]
    assert [v.kind for v in found] == ["divergence"]
    # Two honest replicas that disagree are flagged whatever a liar does.
    checkers = CheckerSet(CheckerConfig(exactly_once=True))
    records = [fault, applied("r0", 1, 1, "c0:1"), applied("r1", 2, 1, "c0:2")]
    assert [v.kind for rec in records for v in checkers.on_event(rec)] == ["divergence"]


def test_per_key_ordering_comes_from_the_protocol() -> None:
    assert CheckerConfig.from_lab({"protocol": "epaxos"}).per_key
    assert CheckerConfig.from_lab({"protocol": "epaxos"}).exactly_once
    assert not CheckerConfig.from_lab({"protocol": "raft"}).per_key
