"""The fuzz harness of issue 14: malformed inputs to every socket of a running lab.

Every socket a lab exposes gets N inputs (tests/fuzz_inputs.py, seeded): the supervisor's
control and telemetry sockets, the router's data and control sockets, each replica's
control socket and (through the router) its data socket, the broker's data and control
sockets. Afterwards: no process exited, every input was counted where it landed (or, for an
unknown op, answered `fail`), no handler needed its last-resort catch (bad_requests = 0),
and the lab still commits writes. The default suite runs 300 per socket on Raft; the slow
run 10,000 per socket on every protocol and prints the per-socket counts.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq

from nodes import auth
from nodes.process import request
from nodes.wire import Codec, WireError
from protocols.base import ClientReply
from tests import fuzz_inputs as fz
from tests.conftest import CLI, wait_until

CHUNK = 250  # inputs in flight at once: below every socket's high-water mark


def _dealer(endpoint: str, identity: bytes | None = None) -> zmq.Socket:
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    if identity:
        s.setsockopt(zmq.IDENTITY, identity)  # in a lab only a handle; the name is below
    # An insider (outsiders cannot connect), named as its identity says.
    auth.as_client(s, auth.env_secret(), identity.decode() if identity else "fuzz")
    s.connect(endpoint)
    return s


def _ask(endpoint: str, cmd: str) -> dict[str, Any]:
    answer = request(zmq.Context.instance(), endpoint, {"cmd": cmd}, 10.0)
    assert answer is not None and answer["ok"], (endpoint, cmd, answer)
    return answer


def _fire_control(endpoint: str, inputs: Iterable[list[bytes]]) -> dict[str, int]:
    """Send every input, reading the replies as they come; each single-frame input must be
    answered with an error."""
    sock = _dealer(endpoint)
    sent = answered = refused = 0
    try:
        batch: list[list[bytes]] = []
        for frames in [*inputs, None]:
            if frames is not None:
                batch.append(frames)
            if len(batch) < CHUNK and frames is not None:
                continue
            expect = 0
            for f in batch:
                sock.send_multipart(f)
                expect += len(f) == 1
            sent += len(batch)
            batch = []
            for _ in range(expect):
                assert sock.poll(20_000), f"{endpoint} stopped answering"
                reply = msgspec.msgpack.decode(sock.recv())
                answered += 1
                refused += reply.get("ok") is False
    finally:
        sock.close()
    assert refused == answered, "a malformed request was accepted"
    return {"sent": sent, "answered": answered}


def _control_counted(counters: dict[str, int], before: dict[str, int]) -> int:
    return sum(counters.get(k, 0) - before.get(k, 0) for k in ("malformed", "refused"))


def _replica_counters(control: str) -> dict[str, int]:
    return _ask(control, "status")["status"]["counters"]


def fuzz(cli: CLI, protocol: str, n: int, seed: int) -> dict[str, dict[str, int]]:
    state = cli.up("-p", protocol)
    rng = random.Random(seed)
    doc = cli.status()
    procs = doc["processes"]
    pids = {name: p["pid"] for name, p in procs.items()}
    replicas = doc["nodes"]
    report: dict[str, dict[str, int]] = {}
    router_ctl, broker_ctl = procs["router"]["control"], procs["broker"]["control"]

    # The supervisor's control socket.
    before = cli.status()["counters"]
    out = _fire_control(state["control"], fz.control_inputs(rng, n, "supervisor"))
    after = cli.status()["counters"]
    out["counted"] = _control_counted(after, before)
    out["bad_requests"] = after.get("bad_requests", 0)
    report["supervisor control"] = out

    # The supervisor's telemetry socket.
    push = zmq.Context.instance().socket(zmq.PUSH)
    auth.as_client(push, auth.env_secret(), "fuzz")
    push.setsockopt(zmq.LINGER, 5000)
    push.connect(_telemetry(cli))
    before = cli.status()["counters"]["malformed"]
    for raw in fz.telemetry_inputs(rng, n):
        push.send(raw)
    push.close()
    counted = wait_until(
        lambda: (m := cli.status()["counters"]["malformed"] - before) >= n and m, timeout=60
    )
    report["supervisor telemetry"] = {"sent": n, "counted": counted}

    # Each replica's control socket.
    for node in replicas:
        control = procs[node["id"]]["control"]
        before = _replica_counters(control)
        out = _fire_control(control, fz.control_inputs(rng, n, "replica"))
        after = _replica_counters(control)
        out["counted"] = _control_counted(after, before)
        out["bad_requests"] = after.get("bad_requests", 0)
        report[f"{node['id']} control"] = out

    # The router's control socket.
    before = _ask(router_ctl, "stats")["control"]
    out = _fire_control(router_ctl, fz.control_inputs(rng, n, "router"))
    after = _ask(router_ctl, "stats")["control"]
    out["counted"] = _control_counted(after, before)
    out["bad_requests"] = after.get("bad_requests", 0)
    report["router control"] = out

    # The broker's control socket.
    before = _ask(broker_ctl, "stats")["counters"]
    out = _fire_control(broker_ctl, fz.control_inputs(rng, n, "broker"))
    after = _ask(broker_ctl, "stats")["counters"]
    out["counted"] = _control_counted(after, before)
    out["bad_requests"] = after.get("bad_requests", 0)
    report["broker control"] = out

    # The router's data socket: wrong frame counts, destinations nobody has, from
    # identities nobody owns.
    stats = _ask(router_ctl, "stats")
    framing = 0
    for i in range(0, n, CHUNK):
        sock = _dealer(state["router"], f"fz-{rng.randrange(10**6)}".encode())
        for j in range(i, min(n, i + CHUNK)):
            if j % 2:
                sock.send_multipart([fz.garbage(rng) for _ in range(rng.choice([1, 3, 4]))])
                framing += 1
            else:
                sock.send_multipart([f"nobody-{j}".encode(), fz.garbage(rng)])
        want = stats["malformed_data"] + framing
        wait_until(lambda w=want: _ask(router_ctl, "stats")["malformed_data"] >= w, timeout=30)
        sock.close()
    after = _ask(router_ctl, "stats")
    report["router data"] = {
        "sent": n,
        "malformed": after["malformed_data"] - stats["malformed_data"],
        "unroutable": after["unroutable"] - stats["unroutable"],
    }
    report["router data"]["counted"] = min(
        n, report["router data"]["malformed"] + report["router data"]["unroutable"]
    )

    # Each replica's data socket, through the router.
    codec = Codec()
    for node in replicas:
        name = node["id"]
        control = procs[name]["control"]
        before = _replica_counters(control)["malformed"]
        sock = _dealer(state["router"], f"fz-{name}-{seed}".encode())
        answers = expected_answers = sent = 0
        batch: list[tuple[bytes, bool]] = []
        for item in [*fz.data_inputs(rng, n, protocol), None]:
            if item is not None:
                batch.append(item)
            if len(batch) < CHUNK and item is not None:
                continue
            for payload, _ in batch:
                sock.send_multipart([name.encode(), payload])
            sent += len(batch)
            expected_answers += sum(answer for _, answer in batch)
            batch = []
            deadline = time.monotonic() + 30
            while answers < expected_answers and time.monotonic() < deadline:
                if sock.poll(1000):
                    answers += _fails(codec, sock.recv_multipart())
        sock.close()
        try:
            malformed = wait_until(
                lambda c=control, b=before, m=sent - expected_answers: (
                    (d := _replica_counters(c)["malformed"] - b) >= m and d
                ),
                timeout=30,
            )
        except AssertionError as e:  # say what was missing (seen once, at load 5, in CI-like runs)
            counters = _replica_counters(control)
            raise AssertionError(
                f"{name}: {counters['malformed'] - before} of {sent - expected_answers} "
                f"malformed data inputs counted ({answers} of {expected_answers} answered); "
                f"replica counters {counters}; router {_ask(router_ctl, 'stats')}"
            ) from e
        report[f"{name} data"] = {"sent": sent, "answered_fail": answers, "malformed": malformed,
                                  "counted": answers + malformed}  # fmt: skip

    # The broker's data socket, through the router.
    before = _ask(broker_ctl, "stats")["counters"]["malformed"]
    sock = _dealer(state["router"], f"fz-broker-{seed}".encode())
    sent = 0
    for raw in fz.broker_inputs(rng, n):
        sock.send_multipart([b"broker", raw])
        sent += 1
        if sent % CHUNK == 0:
            want = before + sent
            wait_until(lambda w=want: _ask(broker_ctl, "stats")["counters"]["malformed"] >= w,
                       timeout=30)  # fmt: skip
    counted = wait_until(
        lambda: (d := _ask(broker_ctl, "stats")["counters"]["malformed"] - before) >= sent and d,
        timeout=30,
    )
    sock.close()
    report["broker data"] = {"sent": sent, "counted": counted}

    # Afterwards: the same processes, all running; the lab commits.
    doc = cli.status()
    assert {name: p["pid"] for name, p in doc["processes"].items()} == pids
    assert all(p["state"] == "running" for p in doc["processes"].values())
    assert wait_until(
        lambda: cli.json("client", "put", "after", "fuzz", check=False).get("status") == "ok",
        timeout=20,
    )
    run_dir = Path(doc["run_dir"])
    cli.run("down")
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert not [e for e in events if e["kind"] == "process.exit"]
    return report


def _telemetry(cli: CLI) -> str:
    import psutil

    argv = psutil.Process(cli.state()["supervisor_pid"]).children()[0].cmdline()
    return argv[argv.index("--telemetry") + 1]


def _fails(codec: Codec, frames: list[bytes]) -> int:
    if len(frames) != 2:
        return 0
    try:
        msgs, _ = codec.decode_all(frames[1])
    except WireError:
        return 0
    return sum(isinstance(m, ClientReply) and m.status == "fail" for m in msgs)


def _check(report: dict[str, dict[str, int]], n: int) -> None:
    width = max(len(k) for k in report)
    print()
    for socket, row in report.items():
        print(f"{socket:<{width}}  " + "  ".join(f"{k}={v}" for k, v in row.items()))
    for socket, row in report.items():
        assert row["sent"] == n, (socket, row)
        assert row["counted"] == n, (socket, row)
        assert row.get("bad_requests", 0) == 0, (socket, row)


def test_malformed_inputs_on_every_socket_are_counted_and_end_no_process(cli: CLI) -> None:
    _check(fuzz(cli, "raft", 300, seed=14), 300)


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["raft", "naive", "epaxos", "pbft"])
def test_ten_thousand_malformed_inputs_per_socket(cli: CLI, protocol: str) -> None:
    _check(fuzz(cli, protocol, 10_000, seed=1400), 10_000)
