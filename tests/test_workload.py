"""The workload client process in parts (nodes/workload.py) and the one client path it
shares with `labctl client` (nodes/client.py): pacing, choosing an operation, issuing,
recording, reporting, the f+1 rule. The network is a real ZeroMQ ROUTER played by the
test (it stands where the fault router does, and answers as the replicas would)."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from nodes import client as cl
from nodes.operations import Client
from nodes.wire import Codec
from nodes.workload import Pacer, Workload, make_client, parse_args
from protocols.base import ClientReply, ClientRequest

REPLICAS = ["r0", "r1", "r2", "r3"]


class Clock:
    """Time the test moves by hand, so no assertion depends on the machine's speed."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Recorder:
    """Stands for the supervisor's telemetry socket: keeps what the process emits."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def emit(self, kind: str, t: float | None = None, **data: Any) -> None:
        self.events.append((kind, {"t": t, **data}))

    def history(self) -> list[dict[str, Any]]:
        return [d for k, d in self.events if k == "history"]


class Net:
    """A ROUTER where the fault router would be: sees [src, dst, payload], answers."""

    def __init__(self) -> None:
        self.ctx = zmq.Context.instance()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        port = self.router.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.codec = Codec()

    def requests(self, n: int, timeout_ms: int = 5000) -> list[tuple[str, ClientRequest]]:
        """The next `n` requests sent, as (destination, request)."""
        out = []
        while len(out) < n:
            assert self.router.poll(timeout_ms), f"only {len(out)} of {n} requests arrived"
            out.extend(self._take())
        return out

    def arrived(self) -> list[tuple[str, ClientRequest]]:
        """The requests sent so far, without waiting."""
        out = []
        while self.router.poll(0):
            out.extend(self._take())
        return out

    def _take(self) -> list[tuple[str, ClientRequest]]:
        _src, dst, payload = self.router.recv_multipart()
        if not dst:
            return []  # the endpoint's hello (nodes.process.data_endpoint): no request
        msg = self.codec.decode(payload)
        assert isinstance(msg, ClientRequest)
        return [(dst.decode(), msg)]

    def reply(self, to: str, reply: ClientReply) -> None:
        self.router.send_multipart([to.encode(), reply.node.encode(), self.codec.encode(reply)])

    def close(self) -> None:
        self.router.close(0)


@pytest.fixture
def net() -> Iterator[Net]:
    n = Net()
    yield n
    n.close()


def args(*extra: str) -> Any:
    return parse_args(["--name", "c0", "--router", "tcp://127.0.0.1:1", "--telemetry", "",
                       "--replicas", ",".join(REPLICAS[:3]), "--rate", "10", *extra])  # fmt: skip


def workload(net: Net, *extra: str, rate: float = 10, duration: float | None = None):
    clock = Clock()
    c = make_client(args(*extra))
    endpoint = cl.Endpoint(net.ctx, net.endpoint, "c0")
    tele = Recorder()
    w = Workload(c, Pacer(clock(), rate, duration), endpoint, tele, clock=clock)
    return w, clock, tele


def receive_until(w: Workload, n: int, timeout_ms: int = 5000) -> None:
    got = 0
    while got < n:
        assert w.endpoint.poll(timeout_ms), "no reply arrived"
        got += w.receive()


# -- pacing ---------------------------------------------------------------------------------


def test_pacing_is_an_open_loop_of_fixed_slots_until_the_duration_ends() -> None:
    p = Pacer(start=0.0, rate=10, duration=1.0)
    assert p.take(0.0) and not p.take(0.05)  # one slot per 100 ms
    assert p.next_wake(0.05) == pytest.approx(0.1)
    # A loop that fell behind gets its slots one per turn, not in a burst.
    assert p.take(0.35) and p.take(0.35) and p.take(0.35) and not p.take(0.35)
    assert p.issuing(0.99) and not p.issuing(1.0)
    assert not p.take(1.5) and p.next_wake(1.5) is None


def test_a_rate_of_zero_issues_nothing() -> None:
    p = Pacer(start=0.0, rate=0)
    assert not p.take(0.0) and not p.take(100.0) and p.next_wake(0.0) is None


# -- choosing an operation ------------------------------------------------------------------


def test_kv_operations_use_the_keys_and_alternate_the_read_modes() -> None:
    c = make_client(args("--keys", "3", "--reads", "log,lease"))
    ops = [c.next_command() for _ in range(400)]
    kinds = {cmd.op for cmd, _ in ops}
    assert kinds == {"get", "put", "cas"}
    assert {cmd.key for cmd, _ in ops} == {"k0", "k1", "k2"}
    modes = {mode for cmd, mode in ops if cmd.op == "get"}
    assert modes == {"log", "lease"}
    assert all(mode == "log" for cmd, mode in ops if cmd.op != "get")
    assert len({cmd.request_id for cmd, _ in ops}) == 400  # every operation its own id


def test_orders_are_keyed_by_symbol_and_valued_user_side_qty() -> None:
    c = make_client(args("--kind", "orders"))
    cmd, mode = c.next_command()
    o = cmd.order
    assert cmd.op == "order" and mode == "log" and o is not None
    assert cmd.key == o.symbol and cmd.value == f"{o.user}:{o.side}:{o.qty}"
    # The CLI and the dashboard build theirs the same way.
    assert cl.order_command(cmd.request_id, "c0", o) == cmd


def test_mixed_is_mostly_kv_with_a_share_of_orders() -> None:
    c = make_client(args("--kind", "mixed"))
    orders = sum(c.next_command()[0].op == "order" for _ in range(1000))
    assert 150 < orders < 350  # MIXED_ORDERS = 0.25


def test_a_target_that_is_no_replica_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown target 'r9'"):
        make_client(args("--target", "r9"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--target", "r9"], "unknown target 'r9'"), (["--mutate", "nope"], "no mutation 'nope'")],
)
def test_the_process_refuses_bad_arguments_in_one_line(extra: list[str], message: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "nodes.workload", "--name", "c0", "--router", "tcp://127.0.0.1:1",
         "--telemetry", "tcp://127.0.0.1:1", "--replicas", "r0", "--rate", "1", *extra],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("error:") and message in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


# -- issuing, recording ---------------------------------------------------------------------


def test_an_operation_goes_to_the_leader_and_its_completion_is_recorded(net: Net) -> None:
    w, clock, tele = workload(net, "--target", "r1", "--kind", "orders")
    assert w.issue(clock())
    [(dst, req)] = net.requests(1)
    assert dst == "r1"
    invoke = tele.history()[0]
    assert invoke["type"] == "invoke" and invoke["request_id"] == req.command.request_id
    assert invoke["op"] == "order" and invoke["node"] == "r1" and invoke["t"] == clock()
    clock.t += 0.012
    net.reply("c0", ClientReply(req.command.request_id, "ok", "r1", term=3, seq=7))
    receive_until(w, 1)
    done = tele.history()[-1]
    assert done["type"] == "ok" and done["seq"] == 7 and done["term"] == 3
    assert done["latency_ms"] == pytest.approx(12.0) and done["attempts"] == 1
    assert not w.client.inflight


def test_not_leader_redirects_at_once_to_the_hinted_node(net: Net) -> None:
    w, clock, tele = workload(net, "--target", "leader")
    w.client.leader_hint = "r0"
    w.issue(clock())
    [(dst, req)] = net.requests(1)
    net.reply("c0", ClientReply(req.command.request_id, "not_leader", dst, leader="r2"))
    receive_until(w, 1)
    [(dst2, again)] = net.requests(1)
    assert dst2 == "r2" and again.command.request_id == req.command.request_id
    net.reply("c0", ClientReply(req.command.request_id, "fail", "r2", error="cas mismatch"))
    receive_until(w, 1)
    done = tele.history()[-1]
    assert done["type"] == "fail" and done["error"] == "cas mismatch"


def test_a_timeout_retries_with_the_same_id_and_then_ends_unknown(net: Net) -> None:
    w, clock, tele = workload(net, "--target", "r0", "--timeout", "0.25", "--retries", "1")
    w.issue(clock())
    [(_, first)] = net.requests(1)
    assert w.wait_time(clock()) == pytest.approx(0.1)  # the next slot comes before the timeout
    clock.t += 0.3
    w.client.on_timers(clock())  # timed out: a retry after its backoff
    clock.t += 1.0
    w.client.on_timers(clock())
    [(_, retry)] = net.requests(1)
    assert retry.command.request_id == first.command.request_id
    clock.t += 0.3
    w.client.on_timers(clock())  # no retries left
    done = tele.history()[-1]
    assert done["type"] == "info" and done["error"] == "timeout" and done["attempts"] == 2


def test_pbft_requests_go_to_every_replica_and_need_f_plus_1_matching_replies(net: Net) -> None:
    w, clock, tele = workload(net, "--quorum", "2", "--replicas", ",".join(REPLICAS))
    w.client.replicas = list(REPLICAS)
    w.issue(clock())
    sent = net.requests(4)
    assert sorted(dst for dst, _ in sent) == REPLICAS
    rid = sent[0][1].command.request_id
    net.reply("c0", ClientReply(rid, "ok", "r3", seq=9, value="forged"))  # a liar
    net.reply("c0", ClientReply(rid, "ok", "r0", seq=5))
    receive_until(w, 2)
    assert rid in w.client.inflight  # two replies, but no two agree
    net.reply("c0", ClientReply(rid, "ok", "r1", seq=5))
    receive_until(w, 1)
    done = tele.history()[-1]
    assert done["type"] == "ok" and done["seq"] == 5 and done["node"] == "all"


def test_the_tally_lets_a_replica_change_its_answer_but_not_vote_twice() -> None:
    t = cl.Tally(2)
    assert t.add(ClientReply("x", "ok", "r0", seq=1)) is None
    assert t.add(ClientReply("x", "ok", "r0", seq=1)) is None  # the same replica again
    assert t.add(ClientReply("x", "ok", "r1", seq=2)) is None
    assert t.add(ClientReply("x", "ok", "r0", seq=2)) is not None  # r0 re-executed: agrees
    assert t.agreeing(("ok", 2, None, None)) == ["r0", "r1"]


# -- the whole loop, and reporting ----------------------------------------------------------


def test_the_loop_runs_its_duration_drains_and_reports(net: Net) -> None:
    clock = Clock()
    c = Client(name="c0", replicas=["r0"], kind="kv", target="r0", reads=["log"], keys=2,
               timeout=5.0, retries=0, max_inflight=4, rng=random.Random(1))  # fmt: skip
    endpoint = cl.Endpoint(net.ctx, net.endpoint, "c0")
    tele = Recorder()
    w = Workload(c, Pacer(clock(), rate=10, duration=0.5), endpoint, tele, clock=clock)
    answered = 0

    def keep_going() -> bool:
        nonlocal answered
        clock.t += 0.05  # each turn, 50 ms of the client's time passes
        for _dst, req in net.arrived():
            net.reply("c0", ClientReply(req.command.request_id, "ok", "r0", term=1, seq=answered))
            answered += 1
        return True

    w.run(keep_going)
    history = tele.history()
    invokes = [r for r in history if r["type"] == "invoke"]
    assert 4 <= len(invokes) <= 6  # 0.5 s at 10/s, counted on the hand-moved clock
    assert len(history) == 2 * len(invokes)  # every operation completed (ok, or stopped)
    kind, done = tele.events[-1]
    assert kind == "workload.done"
    assert done["ops"] == len(invokes) and done["open"] == 0 and done["skipped"] == 0
    endpoint.close()


def test_a_one_shot_call_records_and_answers_as_labctl_client_json(net: Net) -> None:
    endpoint = cl.Endpoint(net.ctx, net.endpoint, "cli-1")
    records: list[dict[str, Any]] = []
    cmd = cl.kv_command("cli-1:1", "cli-1", "get", "k")
    try:

        def answer() -> None:
            [(dst, req)] = net.requests(1)
            net.reply("cli-1", ClientReply(req.command.request_id, "ok", dst, term=2, seq=4,
                                           value="v"))  # fmt: skip

        t = threading.Thread(target=answer)
        t.start()
        out = cl.call(endpoint, cmd, ["r1"], read_mode="lease", record=records.append)
        t.join()
    finally:
        endpoint.close()
    out.pop("ms")
    assert out == {"status": "ok", "node": "r1", "term": 2, "seq": 4, "value": "v"}
    assert [r["type"] for r in records] == ["invoke", "ok"]
    assert records[0]["read_mode"] == "lease" and records[1]["reply"] == out
