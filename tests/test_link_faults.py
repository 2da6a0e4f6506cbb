"""Link faults through a real lab: delay, loss and one-way partitions measured end to end."""

from __future__ import annotations

import math
import statistics
import time

import zmq

from nodes.client import Endpoint
from protocols.base import ClientRequest, Command
from tests.conftest import CLI, slack, wait_until


def round_trips(ep: Endpoint, node: str, count: int) -> list[float]:
    out = []
    for i in range(count):
        cmd = Command(
            request_id=f"{ep.name}:{i}:{time.monotonic()}", client=ep.name, op="get", key="k"
        )
        t0 = time.perf_counter()
        reply = ep.call(node, cmd, timeout=2.0)
        assert reply is not None and reply.status == "ok"
        out.append(time.perf_counter() - t0)
    return out


def test_delay_adds_the_asked_one_way_latency(cli: CLI) -> None:
    state = cli.up("-n", "3", "-p", "naive")
    ep = Endpoint(zmq.Context.instance(), state["router"], "c0", secret=cli.secret())
    try:
        base = statistics.median(round_trips(ep, "r0", 30))
        cli.run("fault", "delay", "--from", "r0", "--to", "c0", "--ms", "50")
        delayed = round_trips(ep, "r0", 30)
    finally:
        ep.close()
    # Never early, whatever the load: each answer waited out the asked 50 ms. Late by a
    # loaded machine's scheduling, within slack; how precise it is is `labctl bench core`.
    assert min(delayed) >= 0.050, min(delayed)
    assert statistics.median(delayed) - base <= slack(0.050), (statistics.median(delayed), base)


def test_loss_drops_within_binomial_bounds(cli: CLI) -> None:
    state = cli.up("-n", "3", "-p", "naive")
    cli.run("fault", "loss", "--from", "c0", "--to", "r0", "--p", "0.5")
    ep = Endpoint(zmq.Context.instance(), state["router"], "c0", secret=cli.secret())
    n, answered = 400, 0
    try:
        for i in range(n):
            cmd = Command(request_id=f"c0:{i}", client="c0", op="get", key="k")
            ep.send("r0", ClientRequest(cmd))
        deadline = time.monotonic() + slack(3)
        seen: set[str] = set()
        while time.monotonic() < deadline and ep.sock.poll(int(slack(300))):
            replies, _ = ep.codec.decode_all(ep.sock.recv_multipart()[1])  # maybe a Bundle
            seen.update(reply.request_id for reply in replies)
        answered = len(seen)
    finally:
        ep.close()
    sigma = math.sqrt(n * 0.25)
    assert abs(answered - n / 2) <= 4 * sigma, answered
    links = cli.status()["router"]["links"]
    row = next(link for link in links if link[0] == "c0" and link[1] == "r0")
    sent, delivered, dropped = row[2], row[3], row[4]
    assert sent == n and delivered == answered and dropped == n - answered


def test_oneway_partition_blocks_only_that_direction(cli: CLI) -> None:
    cli.up("-n", "3", "-p", "naive")
    cli.run("fault", "partition", "--from", "r0", "--to", "r1", "--oneway")
    # r1 no longer hears r0 and promotes itself; r2 still hears r0 and follows it.
    wait_until(lambda: "r1" in cli.status()["leaders"], timeout=3)
    nodes = {n["id"]: n for n in cli.status()["nodes"]}
    assert nodes["r2"]["role"] == "follower" and nodes["r2"]["leader"] == "r0"
    # The other direction still flows: r1's acks reach r0 (router counters).
    links = {(row[0], row[1]): row for row in cli.status()["router"]["links"]}
    assert links[("r0", "r1")][4] > 0  # dropped
    assert links[("r1", "r0")][3] > 0  # delivered
