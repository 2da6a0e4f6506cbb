"""The dashboard's pure parts: the model's fold, link rules, coalescing, actions, rendering.

No Textual app and no lab here: these run in milliseconds and pin the logic the panels and
the pilot tests rely on.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from rich.console import Console

from protocols.pbft import PbftProtocol
from protocols.raft import RaftProtocol
from tui import actions
from tui.actions import ACTIONS
from tui.fake import T0, FakeSource, demo_story
from tui.linkrules import Rule, link_rules
from tui.messages import StatusPolled, TelemetryBatch
from tui.model import LabModel
from tui.telemetry import Accumulator
from tui.widgets.charts import sparkline
from tui.widgets.grid import row_styles_of
from tui.widgets.links import render_links
from tui.widgets.nodes import SPLIT_BRAIN_STYLE, render_nodes


def text_of(renderable: Any, width: int) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def node(i: int, role: str, **kw: Any) -> dict[str, Any]:
    return {"id": f"r{i}", "pid": 100 + i, "state": "running", "role": role, "term": 1,
            "leader": "r0", "commit_index": 3, "applied_index": 3, "log": 3, **kw}  # fmt: skip


def doc(*nodes: dict[str, Any], faults: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"supervisor_pid": 1, "protocol": "naive", "seed": 42, "run_dir": "/r", "uptime": 5.0,
            "nodes": list(nodes), "faults": faults or [], "processes": {}}  # fmt: skip


def three() -> LabModel:
    m = LabModel()
    m.apply_status(doc(node(0, "leader"), node(1, "follower"), node(2, "follower")), 100.0)
    return m


# -- link rules ---------------------------------------------------------------------------


def test_link_rules_from_the_status_fault_list() -> None:
    faults = [
        {"id": 1, "fault": "partition", "describe": "partition r0 <-> r1,r2"},
        {"id": 2, "fault": "delay", "describe": "delay r0 -> broker 50ms +-10ms"},
        {"id": 3, "fault": "loss", "describe": "loss r1 -> r2 p=0.3"},
        {"fault": "pause", "node": "r2", "describe": "pause r2 (2.1s left)"},
    ]
    rules = link_rules(faults)
    assert rules[("r0", "r1")].drop and rules[("r1", "r0")].drop and rules[("r2", "r0")].drop
    assert rules[("r0", "broker")] == Rule(delay_ms=50.0, jitter_ms=10.0)
    assert rules[("r1", "r2")] == Rule(loss=0.3)
    assert ("r2", "r1") not in rules  # loss is one-way
    oneway = link_rules([{"fault": "partition", "describe": "partition r0 -> r1"}])
    assert set(oneway) == {("r0", "r1")}


def test_link_rules_prefer_structured_fields_when_the_supervisor_sends_them() -> None:
    rules = link_rules([{"fault": "partition", "src": ["r1"], "dst": ["r2"], "oneway": True,
                         "describe": "something else entirely"}])  # fmt: skip
    assert set(rules) == {("r1", "r2")}


# -- the model ----------------------------------------------------------------------------


def test_two_leaders_are_split_brain_and_rendered_red() -> None:
    m = three()
    assert m.leaders == ["r0"] and not m.split_brain
    m.apply_event({"t": 101.0, "src": "r1", "kind": "became_leader", "term": 1,
                   "how": "self-promoted"})  # fmt: skip
    assert m.leaders == ["r0", "r1"] and m.split_brain
    rows = row_styles_of(render_nodes(m, 80))
    assert rows == ["bold", SPLIT_BRAIN_STYLE, SPLIT_BRAIN_STYLE, ""]  # header, r0, r1, r2
    assert "r1 became leader, term 1 (self-promoted)" in m.events[-1].text


def test_process_events_change_node_state_before_the_next_poll() -> None:
    m = three()
    m.apply_event({"t": 1, "src": "supervisor", "kind": "fault", "fault": "pause", "node": "r1"})
    assert m.nodes["r1"]["state"] == "paused"
    m.apply_event({"t": 2, "src": "supervisor", "kind": "fault.healed", "node": "r1"})
    assert m.nodes["r1"]["state"] == "running"
    m.apply_event({"t": 3, "src": "supervisor", "kind": "fault", "fault": "kill", "node": "r0"})
    assert m.nodes["r0"]["state"] == "stopped" and m.leaders == []
    # a dead node's last status report must not bring it back
    m.apply_node_status("r0", {"role": "leader", "term": 1})
    assert m.nodes["r0"]["role"] == "down"


def test_paused_countdown_and_lease_bar_follow_the_clock() -> None:
    m = LabModel()
    m.apply_status(doc(node(0, "leader", lease_expiry=104.0),
                       node(1, "follower", state="paused", paused_for=3.0)), 100.0)  # fmt: skip
    m.advance(101.0)
    assert m.paused_left("r1") == pytest.approx(2.0)
    assert m.lease_left("r0") == pytest.approx(3.0)
    out = text_of(render_nodes(m, 120), 120)
    assert "paused 2.0s" in out and "▰▰▰▰▱▱ 3.0s" in out  # 3 of 4 s left


def test_a_new_supervisor_resets_the_picture() -> None:
    m = three()
    m.add_line(100.0, "old news")
    other = doc(node(0, "leader"))
    other["supervisor_pid"] = 2
    assert m.apply_status(other, 200.0) is True
    assert list(m.nodes) == ["r0"] and not m.events


def test_throughput_latency_and_timelines_come_in_one_second_buckets() -> None:
    m = three()
    m.advance(99.2)
    m.advance(100.1)  # the first bucket only sets where the indexes start
    m.apply_node_status("r0", {"role": "leader", "applied_index": 43})
    m.apply_node_status("r1", {"role": "follower", "applied_index": 41})
    m.apply_history([{"type": "invoke", "t": 100.3, "request_id": "a"},
                     {"type": "ok", "t": 100.302, "request_id": "a"}])  # fmt: skip
    m.advance(101.1)
    assert list(m.throughput) == [0.0, 40.0]  # the fastest replica: 3 -> 43
    assert m.latency[-1] == pytest.approx(2.0)
    assert [s.glyph for s in m.timeline["r0"]] == ["▆", "▆"]
    assert [s.glyph for s in m.timeline["r1"]] == ["·", "·"]
    assert sparkline([1, 2, 4], 5) == "  ▂▄█"


def test_links_matrix_shows_cuts_delays_and_rates() -> None:
    m = three()
    faults = [
        {"fault": "partition", "describe": "partition r0 <-> r1,r2"},
        {"fault": "delay", "describe": "delay r1 -> r2 40ms"},
    ]
    m.apply_status(doc(node(0, "leader"), node(1, "follower"), node(2, "follower"), faults=faults),
                   100.0)  # fmt: skip
    m.apply_links({"links": [["r1", "r2", 10, 10, 0, 10, 0], ["r0", "r1", 10, 0, 10, 0, 0]]}, 1.0)
    m.apply_links({"links": [["r1", "r2", 30, 30, 0, 30, 0], ["r0", "r1", 30, 0, 30, 0, 0]]}, 2.0)
    assert m.link_rates[("r1", "r2")] == (20.0, 0.0)
    out = text_of(render_links(m, 60), 60)
    assert "✕20" in out and "40ms 20" in out and "brk" in out


def test_links_matrix_shows_etcd_peer_traffic_from_status() -> None:
    """An etcd lab's members talk over TCP through the fault proxy, not the router: the
    status's peer_links rows [src, dst, bytes, chunks, held, connections] fill the
    replica cells as bytes/s, and a cut link shows what it holds back."""
    m = three()
    nodes = (node(0, "leader"), node(1, "follower"), node(2, "follower"))
    first = doc(*nodes)
    first["peer_links"] = [["r0", "r1", 1000, 10, 0, 1], ["r0", "r2", 0, 0, 0, 1]]
    m.apply_status(first, 100.0)
    later = doc(*nodes, faults=[{"fault": "partition", "describe": "partition r0 -> r2"}])
    later["peer_links"] = [["r0", "r1", 13000, 30, 0, 1], ["r0", "r2", 0, 0, 5, 1]]
    m.apply_status(later, 102.0)
    assert m.peer_rates[("r0", "r1")] == (6000.0, 0.0)
    out = text_of(render_links(m, 60), 60)
    r0_row = next(line for line in out.splitlines() if line.startswith("r0"))
    assert "6k" in r0_row and "✕2" in r0_row  # 2.5 held chunks/s, shown rounded
    assert "peers: bytes/s" in out


# -- the feed's coalescing ----------------------------------------------------------------


def test_accumulator_keeps_the_newest_status_and_only_news() -> None:
    enc = msgspec.msgpack.Encoder()
    acc = Accumulator()
    for i in range(5):
        acc.add(b"node.status.r0", enc.encode({"role": "leader", "commit_index": i}))
    acc.add(b"broker.write.broker", enc.encode({"t": 0.5, "src": "broker", "accepted": True}))
    acc.add(b"became_leader.r1", enc.encode({"t": 1.0, "src": "r1", "kind": "became_leader"}))
    acc.add(b"fault.['r0']", enc.encode({"t": 2.0, "src": ["r0"], "kind": "fault"}))
    acc.add(b"stepped_down.r2", b"\xc1 garbage")
    batch = acc.take(3.0)
    assert batch.statuses["r0"]["commit_index"] == 4
    assert [e["kind"] for e in batch.events] == ["became_leader", "fault"]
    assert batch.received == 9 and not acc.pending


def test_coalesced_batches_lose_no_event() -> None:
    statuses = {"r0": {"commit_index": 1}, "r1": {"commit_index": 1}}
    older = TelemetryBatch(t=1.0, events=[{"kind": "fault"}], links={"links": []},
                           statuses=statuses)  # fmt: skip
    newer = TelemetryBatch(t=2.0, events=[{"kind": "fault.healed"}],
                           statuses={"r0": {"commit_index": 5}})  # fmt: skip
    assert older.can_replace(newer)
    assert [e["kind"] for e in newer.events] == ["fault", "fault.healed"]
    assert newer.statuses["r0"]["commit_index"] == 5 and "r1" in newer.statuses
    assert newer.links == {"links": []}
    step = TelemetryBatch(t=1.0, replaceable=False)
    assert not step.can_replace(newer)
    a = StatusPolled(t=1.0, doc={}, history=[{"type": "invoke"}])
    b = StatusPolled(t=2.0, doc={}, history=[{"type": "ok"}])
    assert a.can_replace(b) and [r["type"] for r in b.history] == ["invoke", "ok"]


# -- actions ------------------------------------------------------------------------------


def test_action_defaults_cut_the_leader_from_the_rest() -> None:
    m = three()
    values = actions.defaults(ACTIONS["partition"], m, ["naive", "raft"])
    assert values == {"from": ["r0"], "to": ["r1", "r2"], "oneway": False}
    assert actions.build(ACTIONS["partition"], values) == {
        "fault": "partition", "from": ["r0"], "to": ["r1", "r2"], "oneway": False}  # fmt: skip
    assert actions.defaults(ACTIONS["swap"], m, ["naive", "raft"])["protocol"] == "raft"
    m.nodes["r2"]["state"] = "stopped"
    assert actions.defaults(ACTIONS["restart"], m, [])["node"] == "r2"


@pytest.mark.parametrize(
    ("name", "values", "problem"),
    [
        ("pause", {"node": "r0", "for": "5 parsecs"}, "'for'"),
        ("loss", {"from": ["r0"], "to": ["r1"], "p": "2"}, "between 0 and 1"),
        ("partition", {"from": [], "to": ["r1"], "oneway": False}, "'from'"),
        ("order", {"node": "r0", "user": "a", "side": "buy", "qty": "-3"}, "quantity"),
    ],
)
def test_bad_forms_are_refused_with_a_reason(name: str, values: dict, problem: str) -> None:
    assert problem in (actions.check(ACTIONS[name], values) or "")


def test_every_fault_action_builds_a_valid_fault_from_its_defaults() -> None:
    m = three()
    for a in ACTIONS.values():
        if a.kind == "fault":
            assert actions.check(a, actions.defaults(a, m, [])) is None, a.name


def test_perform_reports_a_lab_error_instead_of_raising() -> None:
    src = FakeSource.demo(3, fail={"kill": "r0 is already stopped"})
    done = actions.perform(ACTIONS["kill"], {"node": "r0"}, src)
    assert done.error == "r0 is already stopped"  # type: ignore[attr-defined]
    ok = actions.perform(ACTIONS["pause"], {"node": "r1", "for": "2s"}, src)
    assert ok.detail == "pause r1 for 2s"  # type: ignore[attr-defined]


def test_demo_story_is_consistent() -> None:
    status, steps = demo_story(5)
    assert len(steps) == 20 and len(status["nodes"]) == 5
    assert all(T0 + k <= e["t"] < T0 + k + 1 for k, s in enumerate(steps) for e in s)


def test_a_cut_off_followers_elections_fold_into_one_line() -> None:
    m = three()
    m.apply_event({"t": 100.0, "src": "supervisor", "kind": "fault", "fault": "partition",
                   "describe": "partition r2 <-> r0,r1"})  # fmt: skip
    for i in range(50):  # a real candidate without pre-vote: a new term every attempt
        m.apply_event({"t": 100.2 + i * 0.2, "src": "r2", "kind": "became_candidate",
                       "term": 2 + i})  # fmt: skip
    texts = [e.text for e in m.events]
    assert texts[-2:] == ["fault: partition r2 <-> r0,r1", "r2 stood for election x50, terms 2-51"]
    m.apply_event({"t": 111.0, "src": "supervisor", "kind": "fault.healed",
                   "healed": ["partition r2 <-> r0,r1"]})  # fmt: skip
    m.apply_event({"t": 111.2, "src": "r2", "kind": "became_candidate", "term": 52})
    assert [e.text for e in m.events][-2:] == [
        "healed: partition r2 <-> r0,r1", "r2 stands for election, term 52",
    ]  # fmt: skip (a heal in between starts a new line: the story changed)


def test_pre_votes_name_the_term_they_ask_for() -> None:
    m = three()
    for _ in range(3):  # pre-vote keeps the term: the cut-off node asks for term 2 each time
        m.apply_event({"t": 101.0, "src": "r1", "kind": "became_candidate", "term": 1,
                       "pre_vote": True})  # fmt: skip
    assert m.events[-1].text == "r1 asked for pre-votes x3 (for term 2)"


def test_a_node_asking_for_pre_votes_shows_as_pre_candidate_not_candidate() -> None:
    m = LabModel()
    raft = {"protocol": "raft", "display": RaftProtocol.display().to_doc()}
    m.apply_status({**doc(node(0, "leader"), node(1, "follower")), **raft}, 100.0)
    # A pre-candidate has not raised its term: calling it a candidate says it did.
    m.apply_event({"t": 101.0, "src": "r1", "kind": "became_candidate", "term": 1,
                   "pre_vote": True})  # fmt: skip
    assert m.nodes["r1"]["role"] == "pre_candidate"
    m.apply_event({"t": 101.2, "src": "r1", "kind": "became_candidate", "term": 2})
    assert m.nodes["r1"]["role"] == "candidate"


def test_pbft_says_primary_and_view() -> None:
    m = LabModel()
    pbft = {"protocol": "pbft", "display": PbftProtocol.display().to_doc()}  # as the lab sends
    m.apply_status({**doc(node(0, "primary"), node(1, "backup")), **pbft}, 100.0)
    m.apply_event({"t": 101.0, "src": "r1", "kind": "became_leader", "term": 1, "how": "new_view"})
    assert m.events[-1].text == "r1 became primary, view 1 (new_view)"
    # The role vocabulary is the protocol's: the event makes r1 the primary, r0 not.
    assert m.nodes["r1"]["role"] == "primary" and m.leaders == ["r0", "r1"]
