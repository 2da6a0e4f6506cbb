"""The in-memory network the Raft tests stand on (protocols/simnet.py): determinism, the
faults it injects, and checks that are not vacuous (the naive protocol trips them)."""

from __future__ import annotations

import random
from typing import Any, ClassVar

import msgspec

from protocols.base import ClientRequest, NodeConfig, Protocol, Ready
from protocols.naive import NaiveProtocol
from protocols.raft import RaftProtocol
from protocols.simnet import SimNet


class Ping(msgspec.Struct, frozen=True, tag=True):
    n: int


class Note(msgspec.Struct, frozen=True, tag=True):
    n: int


class Recorder(Protocol):
    """A protocol that only records: a client request makes it persist three notes and
    send `value` pings to the node named by the request's key."""

    name: ClassVar[str] = "recorder"
    description: ClassVar[str] = "test double"
    Options = msgspec.defstruct("RecorderOptions", [])
    messages = (Ping,)
    records = (Note,)

    def __init__(self, config: NodeConfig) -> None:
        super().__init__(config)
        self.got: list[tuple[float, str, int]] = []
        self.recovered: list[msgspec.Struct] = []

    def start(self, now: float, recovered: list[msgspec.Struct]) -> Ready:
        self.recovered = list(recovered)
        return Ready()

    def on_message(self, now: float, src: str, msg: msgspec.Struct) -> Ready:
        assert isinstance(msg, Ping)
        self.got.append((now, src, msg.n))
        return Ready()

    def on_client(self, now: float, client: str, request: ClientRequest) -> Ready:
        out = Ready(persist=[Note(1), Note(2), Note(3)])
        for i in range(int(request.command.value or 0)):
            out.send(request.command.key, Ping(i))
        return out

    def on_tick(self, now: float) -> Ready:
        return Ready()

    def status(self) -> dict[str, Any]:
        return {"role": "none", "term": 0, "leader": None}


def burst(net: SimNet, src: str, dst: str, count: int) -> None:
    net.request(src, net.command("put", key=dst, value=str(count)))


def received(net: SimNet, node: str) -> list[int]:
    proto = net.proto(node)
    assert isinstance(proto, Recorder)
    return [n for _, _, n in proto.got]


def test_a_seed_replays_a_run_exactly() -> None:
    def run(seed: int) -> list[tuple[float, str, str]]:
        net = SimNet(RaftProtocol, 5, seed=seed)
        net.loss = 0.1
        rng = random.Random(seed)
        for _ in range(20):
            net.run_for(rng.uniform(0, 0.3))
            net.isolate(rng.choice(net.ids))
            net.put(rng.choice(net.ids), "k", "v")
            net.run_for(0.2)
            net.heal()
            net.loss = 0.1
        return [(e.time, e.node, e.kind) for e in net.events]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_links_are_fifo_unless_reordering_is_asked_for() -> None:
    net = SimNet(Recorder, 2, latency=(0.001, 0.05))
    burst(net, "r0", "r1", 50)
    net.run_for(1.0)
    assert received(net, "r1") == list(range(50))
    net = SimNet(Recorder, 2, latency=(0.001, 0.05))
    net.reorder = True
    burst(net, "r0", "r1", 50)
    net.run_for(1.0)
    assert sorted(received(net, "r1")) == list(range(50))
    assert received(net, "r1") != list(range(50))


def test_one_way_cuts_loss_and_duplicates() -> None:
    net = SimNet(Recorder, 3)
    net.cut("r0", "r1", oneway=True)
    burst(net, "r0", "r1", 5)
    burst(net, "r1", "r0", 5)
    net.run_for(0.1)
    assert received(net, "r1") == []
    assert received(net, "r0") == list(range(5))
    net.heal()
    net.drop("r0", "r2", 1.0)
    burst(net, "r0", "r2", 5)
    net.run_for(0.1)
    assert received(net, "r2") == []
    net.heal()
    burst(net, "r0", "r2", 3)
    net.duplicate = 1.0  # after the request left: only the pings are doubled
    net.run_for(0.1)
    assert sorted(received(net, "r2")) == [0, 0, 1, 1, 2, 2]


def test_a_paused_node_gets_its_messages_when_it_resumes() -> None:
    net = SimNet(Recorder, 2)
    net.pause("r1", 1.0)
    burst(net, "r0", "r1", 3)
    net.run_for(0.5)
    assert received(net, "r1") == []
    net.run_for(1.0)
    proto = net.proto("r1")
    assert isinstance(proto, Recorder)
    assert [n for _, _, n in proto.got] == [0, 1, 2]
    assert all(t >= 1.0 for t, _, _ in proto.got)


def test_restart_recovers_what_was_persisted_and_a_torn_write_keeps_a_prefix() -> None:
    net = SimNet(Recorder, 2)
    burst(net, "r0", "r1", 0)
    net.run_for(0.1)
    net.crash("r0", mid_write=True)
    burst(net, "r0", "r1", 5)  # persists three notes and sends five pings: torn
    net.run_for(0.1)
    assert not net.nodes["r0"].alive
    assert received(net, "r1") == []  # nothing of the torn batch left the node
    net.restart("r0")
    proto = net.proto("r0")
    assert isinstance(proto, Recorder)
    assert proto.recovered[:3] == [Note(1), Note(2), Note(3)]
    assert len(proto.recovered) < 6


def test_node_clocks_with_offset_and_drift() -> None:
    net = SimNet(Recorder, 2)
    net.run_for(1.0)
    net.set_clock("r1", offset=5.0, drift=0.5)
    assert net.node_now("r1") == 6.0
    net.run_for(2.0)
    assert net.node_now("r1") == 3.0 + 5.0 + 0.5 * 2.0
    assert net.nodes["r1"].clock.to_true(net.node_now("r1")) == net.now


def test_the_safety_checks_catch_the_naive_protocol() -> None:
    # Not vacuous: the seed's protocol, partitioned, makes two leaders in one term and
    # applies different writes at one index; the network reports both.
    net = SimNet(NaiveProtocol, 3, seed=1)
    net.run_for(0.5)
    net.partition(["r0"], ["r1", "r2"])
    net.run_for(1.0)
    net.put("r0", "x", "a")
    for node in ("r1", "r2"):
        if net.status(node)["role"] == "leader":
            net.put(node, "x", "b")
    net.run_for(0.5)
    text = "\n".join(net.violations)
    assert "two leaders in term" in text
    assert "divergence at index" in text


def test_the_read_check_catches_a_stale_read() -> None:
    # The naive leader reads locally; cut off, it keeps answering with what it has.
    net = SimNet(NaiveProtocol, 3, seed=2)
    net.run_for(0.5)
    net.put("r0", "x", "old")
    net.run_for(0.2)
    net.partition(["r0"], ["r1", "r2"])
    net.run_for(1.0)
    new = next(i for i in ("r1", "r2") if net.status(i)["role"] == "leader")
    rid = net.put(new, "x", "new")
    net.run_until(lambda: net.reply_for(rid) is not None, 1.0)
    net.get("r0", "x", "lease")
    net.run_for(0.2)
    assert any("misses writes" in p for p in net.stale_reads())
