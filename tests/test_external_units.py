"""The pure parts of external nodes: names, topologies, the service stores, the Maelstrom
workload checkers, the program checks (no processes)."""

from __future__ import annotations

import random
import shutil
import sys

import pytest

from labctl.checkers import CheckerSet
from labctl.external import NodeConfigError, node_config
from nodes.external import names
from nodes.external.program import _elf_kind, clock_problem
from nodes.external.services import KVError, LinKV, LwwKV, SeqKV
from nodes.external.topology import topology


def test_names_map_both_ways() -> None:
    assert names.to_program("r2") == "n2" and names.to_program("c3") == "c3"
    assert names.to_lab("n2", 3) == "r2"
    assert names.to_lab("n3", 3) is None and names.to_lab("n01", 3) is None
    assert names.to_lab("lin-kv", 3) == "lin-kv" and names.to_lab("c12", 3) == "c12"
    assert names.to_lab("bogus", 3) is None
    assert names.is_definite(22) and not names.is_definite(0) and not names.is_definite(1000)


def test_topologies() -> None:
    assert topology("line", 3) == {"n0": ["n1"], "n1": ["n0", "n2"], "n2": ["n1"]}
    grid = topology("grid", 4)
    assert grid["n0"] == ["n1", "n2"] and grid["n3"] == ["n1", "n2"]
    total = topology("total", 3)
    assert total["n1"] == ["n0", "n2"]
    tree = topology("tree2", 5)
    assert tree["n0"] == ["n1", "n2"] and tree["n1"] == ["n0", "n3", "n4"]
    with pytest.raises(ValueError, match="unknown topology"):
        topology("star", 3)


def test_lin_kv_service() -> None:
    kv = LinKV()
    with pytest.raises(KVError) as e:
        kv.handle("r0", {"type": "read", "key": 1})
    assert e.value.code == 20
    assert kv.handle("r0", {"type": "write", "key": 1, "value": 5}) == {"type": "write_ok"}
    with pytest.raises(KVError) as e:
        kv.handle("r1", {"type": "cas", "key": 1, "from": 4, "to": 6})
    assert e.value.code == 22
    kv.handle("r1", {"type": "cas", "key": 1, "from": 5, "to": 6})
    kv.handle("r1", {"type": "cas", "key": "new", "from": 0, "to": 1, "create_if_not_exists": True})
    assert kv.handle("r2", {"type": "read", "key": "new"})["value"] == 1
    assert kv.handle("r2", {"type": "read", "key": 1})["value"] == 6


def test_seq_kv_reads_may_be_stale_but_never_go_back_for_one_client() -> None:
    kv = SeqKV(random.Random(3))
    for v in range(50):
        kv.handle("r0", {"type": "write", "key": "x", "value": v})
        assert kv.handle("r0", {"type": "read", "key": "x"})["value"] == v  # its own writes
    seen = []
    for _ in range(200):
        try:
            seen.append(kv.handle("r1", {"type": "read", "key": "x"})["value"])
        except KVError:
            seen.append(-1)  # before the first write: the key did not exist yet
    assert seen == sorted(seen)  # monotonic for r1
    assert seen[0] < 49  # and it did read the past
    kv.handle("r1", {"type": "cas", "key": "x", "from": 49, "to": 50})  # cas acts on the newest
    assert kv.handle("r1", {"type": "read", "key": "x"})["value"] == 50


def test_lww_kv_replicas_disagree_until_they_gossip() -> None:
    kv = LwwKV(random.Random(1))
    kv.handle("r0", {"type": "write", "key": "k", "value": 1})
    holders = sum("k" in r for r in kv.replicas)
    assert holders == 1
    for _ in range(30):
        kv.next_gossip = 0
        kv.gossip(1.0)
    assert all(r["k"][1] == 1 for r in kv.replicas)


def rec(t: float, kind: str, rid: str, workload: str, op: str, **kw: object) -> dict:
    return {"t": t, "type": kind, "request_id": rid, "process": "c0", "workload": workload,
            "op": op, **kw}  # fmt: skip


def test_g_counter_final_read_between_acknowledged_and_possible() -> None:
    cs = CheckerSet({"protocol": "external"})
    for i, (status, delta) in enumerate([("ok", 3), ("ok", 2), ("info", 4), ("fail", 7)]):
        cs.on_history(rec(i, "invoke", f"a{i}", "g-counter", "add", delta=delta, node="r0"))
        cs.on_history(rec(i + 0.5, status, f"a{i}", "g-counter", "add", node="r0"))
    for i, (node, value) in enumerate([("r0", 5), ("r1", 9), ("r2", 4)]):
        cs.on_history(rec(10 + i, "invoke", f"f{i}", "g-counter", "read", node=node))
        cs.on_history(rec(10.5 + i, "ok", f"f{i}", "g-counter", "read", node=node, value=value,
                          final=True))  # fmt: skip
    found = cs.finish()
    assert [v.nodes for v in found] == [["r2"]]
    assert "final read is 4, but acknowledged adds sum to 5 (at most 9" in found[0].detail


def test_unique_ids_duplicate_found_live() -> None:
    cs = CheckerSet({"protocol": "external"})
    out = []
    for i, ident in enumerate([1, [2, "a"], 3, [2, "a"]]):
        cs.on_history(rec(i, "invoke", f"g{i}", "unique-ids", "generate", node="r1"))
        out += cs.on_history(rec(i + 0.5, "ok", f"g{i}", "unique-ids", "generate", node="r1",
                                 id=ident))  # fmt: skip
    assert [v.kind for v in out] == ["duplicate-id"] and "g1" in out[0].detail


def test_broadcast_lost_and_latency() -> None:
    cs = CheckerSet({"protocol": "external"})
    for i in range(3):
        cs.on_history(rec(i, "invoke", f"b{i}", "broadcast", "broadcast", value=i, node="r0"))
        cs.on_history(rec(i + 0.1, "ok", f"b{i}", "broadcast", "broadcast", node="r0"))
    reads = [("r0", 5, [0, 1, 2], False), ("r1", 4, [0], False), ("r1", 6, [0, 1, 2], False),
             ("r0", 9, [0, 1, 2], True), ("r1", 9, [0, 2], True)]  # fmt: skip
    for j, (node, t, msgs, final) in enumerate(reads):
        cs.on_history(rec(t, "invoke", f"r{j}", "broadcast", "read", node=node))
        cs.on_history(rec(t + 0.1, "ok", f"r{j}", "broadcast", "read", node=node, messages=msgs,
                          final=final))  # fmt: skip
    links = [["r0", "r1", 12, 12, 0, 0, 0], ["c0", "r0", 8, 8, 0, 0, 0]]
    cs.on_event({"t": 9, "src": "router", "kind": "router.links", "links": links})
    found = cs.finish()
    assert [(v.kind, v.nodes) for v in found] == [("lost-message", ["r1"])]
    assert "lacks 1 of 3" in found[0].detail
    stats = cs.summary()["workloads"]["broadcast"]
    assert stats["server_messages"] == 12 and stats["msgs_per_op"] == 2.0  # 12 over 6 client ops
    assert stats["stable_latency_ms"]["never_stable"] == 1  # message 1, gone from r1


def test_node_config_refuses_bad_tables() -> None:
    with pytest.raises(NodeConfigError, match="no such program"):
        node_config({"command": "no-such-program-here --flag"})
    with pytest.raises(NodeConfigError, match="unknown key"):
        node_config({"command": "python3 x.py", "bogus": 1})
    with pytest.raises(NodeConfigError, match="topology"):
        node_config({"command": "python3 x.py", "topology": "star"})
    assert node_config({"command": "python3 x.py"})["argv"] == ["python3", "x.py"]


def test_clock_problem_names_go() -> None:
    problem = clock_problem(["go", "run", "main.go"])
    assert problem is not None and ("vDSO" in problem or "libfaketime" in problem)
    assert _elf_kind(sys.executable) in ("dynamic", "static")
    assert _elf_kind(__file__) is None  # a script: its interpreter decides
    go = shutil.which("go")
    if go:
        assert "a Go binary" in (clock_problem([go, "version"]) or "")
