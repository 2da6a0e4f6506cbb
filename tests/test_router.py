"""The fault router, tested as the real process with real DEALER endpoints.

Each test starts `python -m faults.router` as the supervisor would (its own session, a
telemetry PULL bound here to hear router.ready) and kills its process group afterwards,
whatever happened. Ordering is established without sleeps: a message an endpoint sends to
itself through the router (`barrier`) comes back only after the router has handled every
earlier message of that endpoint, since one connection's messages are handled in order.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import psutil
import pytest
import zmq

from faults.links import LinkRule, LinkTable
from nodes.process import decode_dict, encode, request
from tests.conftest import slack

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = slack(5.0)


# --------------------------------------------------------------------------- harness


@dataclass
class Router:
    proc: subprocess.Popen[bytes]
    pid: int
    data: str
    control: str
    telemetry: zmq.Socket
    ctx: zmq.Context

    def ctl(self, cmd: str, **args: Any) -> dict[str, Any]:
        reply = request(self.ctx, self.control, {"cmd": cmd, **args}, timeout=TIMEOUT)
        assert reply is not None, f"router did not answer {cmd!r}"
        return reply

    def set_links(self, *links: tuple[str, str, dict[str, Any]]) -> None:
        wire = [{"src": s, "dst": d, "rule": r} for s, d, r in links]
        assert self.ctl("set_links", links=wire) == {"ok": True, "links": len(wire)}

    def link(self, src: str, dst: str) -> dict[str, int]:
        for row in self.ctl("stats")["links"]:
            if (row["src"], row["dst"]) == (src, dst):
                return row
        return {"sent": 0, "delivered": 0, "dropped": 0, "delayed": 0, "duplicated": 0}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _router_cmd(telemetry: str, seed: int = 7) -> list[str]:
    """The supervisor's command line, but for --parent-pid, which the caller adds."""
    return [sys.executable, "-m", "faults.router", "--telemetry", telemetry, "--seed", str(seed)]


def _wait_event(pull: zmq.Socket, kind: str, timeout: float = TIMEOUT) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if pull.poll(max(1, int(left * 1000))):
            event = decode_dict(pull.recv())
            if event["kind"] == kind:
                return event
    raise AssertionError(f"no {kind} telemetry within {timeout} s")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(TIMEOUT)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pid: int, timeout: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        # psutil polls a non-child's state; a zombie never "exits", hence the check above.
        with contextlib.suppress(psutil.TimeoutExpired, psutil.NoSuchProcess):
            psutil.Process(pid).wait(timeout=0.02)
    return _gone(pid)


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def telemetry(ctx: zmq.Context) -> tuple[zmq.Socket, str]:
    pull = ctx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    return pull, f"tcp://127.0.0.1:{port}"


def start_router(
    ctx: zmq.Context, telemetry: tuple[zmq.Socket, str], seed: int = 7, extra: tuple[str, ...] = ()
) -> Router:
    pull, endpoint = telemetry
    proc = subprocess.Popen(
        [*_router_cmd(endpoint, seed), "--parent-pid", str(os.getpid()), *extra],
        env=_env(),
        start_new_session=True,
    )
    try:
        ready = _wait_event(pull, "router.ready")["data"]
    except BaseException:
        _kill_group(proc)
        raise
    return Router(proc, ready["pid"], ready["data"], ready["control"], pull, ctx)


@pytest.fixture
def router(ctx: zmq.Context, telemetry: tuple[zmq.Socket, str]) -> Iterator[Router]:
    r = start_router(ctx, telemetry)
    try:
        yield r
    finally:
        _kill_group(r.proc)


def endpoint(r: Router, name: str) -> zmq.Socket:
    """A DEALER named `name`, known to the router: it has heard its own hello come back."""
    sock = r.ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.IDENTITY, name.encode())
    sock.connect(r.data)
    sock.send_multipart([name.encode(), b"hello"])
    assert recv(sock) == [name.encode(), b"hello"]
    return sock


def recv(sock: zmq.Socket, timeout: float = TIMEOUT) -> list[bytes]:
    if not sock.poll(int(timeout * 1000)):
        raise AssertionError("nothing received in time")
    return sock.recv_multipart()


def barrier(sock: zmq.Socket) -> None:
    """Return once the router has handled everything `sock` sent before this call."""
    name = sock.getsockopt(zmq.IDENTITY)
    token = os.urandom(8)
    sock.send_multipart([name, b"barrier" + token])
    while recv(sock) != [name, b"barrier" + token]:
        pass  # other traffic to this endpoint is not the barrier's business


def until_end(sock: zmq.Socket) -> list[bytes]:
    """Payloads received before the b"end" marker."""
    got = []
    while (payload := recv(sock)[1]) != b"end":
        got.append(payload)
    return got


def seq(i: int) -> bytes:
    return i.to_bytes(4, "big")


# ------------------------------------------------------------------------ link rules


def test_link_rule_validation_and_wire_round_trip() -> None:
    assert LinkRule().is_pass()
    assert not LinkRule(duplicate=0.1).is_pass()
    table = LinkTable(
        {("r0", "r1"): LinkRule(delay=0.05, jitter=0.01), ("r1", "r0"): LinkRule(drop=True)}
    )
    assert LinkTable.from_wire(table.to_wire()) == table
    assert LinkTable.from_wire(msgspec.msgpack.decode(encode(table.to_wire()))) == table
    assert table.rule("r0", "r2") == LinkRule()
    bad = [
        ({"loss": 1.5}, "loss"),
        ({"duplicate": -0.1}, "duplicate"),
        ({"delay": -1}, "delay"),
        ({"jitter": float("inf")}, "jitter"),
        ({"loss": float("nan")}, "loss"),
        ({"lossy": 0.1}, "lossy"),
        ({"drop": "yes"}, "drop"),
    ]
    for rule, word in bad:
        with pytest.raises(ValueError, match=word):
            LinkTable.from_wire([{"src": "a", "dst": "b", "rule": rule}])
    with pytest.raises(ValueError, match="given twice"):
        LinkTable.from_wire([{"src": "a", "dst": "b"}, {"src": "a", "dst": "b"}])
    with pytest.raises(ValueError, match="dst"):
        LinkTable.from_wire([{"src": "a", "rule": {}}])
    with pytest.raises(ValueError):
        LinkRule(loss=2.0)


# ---------------------------------------------------------------------------- router


def test_ready_event_names_endpoints_and_pid(router: Router) -> None:
    assert router.pid == router.proc.pid
    assert router.data.startswith("tcp://127.0.0.1:")
    assert router.control.startswith("tcp://127.0.0.1:")
    assert router.ctl("ping") == {"ok": True, "pid": router.pid}
    reply = router.ctl("launch_missiles")
    assert reply["ok"] is False and reply["code"] == "unknown_command"


def test_pass_through_both_ways_unchanged(router: Router) -> None:
    a, b = endpoint(router, "r0"), endpoint(router, "c0")
    rng = random.Random(1)
    payloads = [b"", b"\x00"] + [rng.randbytes(rng.randrange(1, 3000)) for _ in range(100)]
    for p in payloads:
        a.send_multipart([b"c0", p])
        b.send_multipart([b"r0", p[::-1]])
    assert [recv(b) for _ in payloads] == [[b"r0", p] for p in payloads]
    assert [recv(a) for _ in payloads] == [[b"c0", p[::-1]] for p in payloads]
    n = len(payloads)
    for src, dst in (("r0", "c0"), ("c0", "r0")):
        row = router.link(src, dst)
        assert (row["sent"], row["delivered"], row["dropped"]) == (n, n, 0)


def test_partition_drops_only_the_named_direction(router: Router) -> None:
    a, b = endpoint(router, "r0"), endpoint(router, "r1")
    router.set_links(("r0", "r1", {"drop": True}), ("r1", "r0", {"drop": True}))
    # set_links replaces the whole table: now only r0 -> r1 is cut.
    router.set_links(("r0", "r1", {"drop": True}))
    for i in range(50):
        a.send_multipart([b"r1", seq(i)])
        b.send_multipart([b"r0", seq(i)])
    assert [recv(a)[1] for _ in range(50)] == [seq(i) for i in range(50)]
    barrier(a)
    assert router.link("r0", "r1") == {
        "src": "r0", "dst": "r1", "sent": 50, "delivered": 0, "dropped": 50, "delayed": 0,
        "duplicated": 0,
    }  # fmt: skip
    router.set_links()  # heal
    a.send_multipart([b"r1", b"after"])
    # Had any cut message been forwarded, it would arrive before this one (same path, FIFO).
    assert recv(b) == [b"r0", b"after"]


def test_delay_adds_its_median(router: Router) -> None:
    a, b = endpoint(router, "r0"), endpoint(router, "r1")

    def latencies(n: int) -> list[float]:
        for _ in range(n):
            a.send_multipart([b"r1", msgspec.msgpack.encode(time.monotonic())])
        out = []
        for _ in range(n):
            sent = msgspec.msgpack.decode(recv(b)[1])
            out.append(time.monotonic() - sent)
        return out

    base = statistics.median(latencies(50))
    router.set_links(("r0", "r1", {"delay": 0.05}))
    delayed = latencies(50)
    # Never early, whatever the load; late only by scheduling (the precision of the delay
    # is measured by `labctl bench core`, not asserted on a machine that may be busy).
    assert min(delayed) >= 0.05, f"a message came {min(delayed) * 1000:.2f} ms after sending"
    added = statistics.median(delayed) - base
    assert added <= slack(0.05), f"median added latency {added * 1000:.2f} ms"
    assert router.link("r0", "r1")["delayed"] == 50


def test_loss_is_binomial_and_seeded(ctx: zmq.Context, router: Router) -> None:
    n, p = 2000, 0.5
    a, b = endpoint(router, "r0"), endpoint(router, "r1")
    router.set_links(("r0", "r1", {"loss": p}))
    for i in range(n):
        a.send_multipart([b"r1", seq(i)])
    barrier(a)
    dropped = router.link("r0", "r1")["dropped"]
    assert abs(dropped - n * p) <= 4 * math.sqrt(n * p * (1 - p)), dropped
    router.set_links()
    a.send_multipart([b"r1", b"end"])
    got = until_end(b)
    assert len(got) == n - dropped == router.link("r0", "r1")["delivered"] - 1
    assert got == sorted(got)  # loss never reorders


def test_same_seed_loses_the_same_messages(
    ctx: zmq.Context, telemetry: tuple[zmq.Socket, str]
) -> None:
    survivors = []
    for _ in range(2):
        r = start_router(ctx, telemetry, seed=42)
        try:
            a, b = endpoint(r, "r0"), endpoint(r, "r1")
            r.set_links(("r0", "r1", {"loss": 0.3}))
            for i in range(300):
                a.send_multipart([b"r1", seq(i)])
            barrier(a)
            r.set_links()
            a.send_multipart([b"r1", b"end"])
            survivors.append(until_end(b))
            a.close()
            b.close()
        finally:
            _kill_group(r.proc)
    assert survivors[0] == survivors[1]
    assert 0 < len(survivors[0]) < 300


def test_duplicate_is_binomial_and_keeps_order(router: Router) -> None:
    n, p = 2000, 0.3
    a, b = endpoint(router, "r0"), endpoint(router, "r1")
    router.set_links(("r0", "r1", {"duplicate": p}))
    for i in range(n):
        a.send_multipart([b"r1", seq(i)])
    barrier(a)
    row = router.link("r0", "r1")
    dups = row["duplicated"]
    assert abs(dups - n * p) <= 4 * math.sqrt(n * p * (1 - p)), dups
    router.set_links()
    a.send_multipart([b"r1", b"end"])
    got = until_end(b)
    assert len(got) == n + dups
    assert got == sorted(got) and set(got) == {seq(i) for i in range(n)}
    assert row["delivered"] == n + dups and row["dropped"] == 0


def test_jitter_never_reorders_a_link(router: Router) -> None:
    a, b = endpoint(router, "r0"), endpoint(router, "r1")
    router.set_links(("r0", "r1", {"delay": 0.005, "jitter": 0.005}))
    for i in range(500):
        a.send_multipart([b"r1", seq(i)])
    assert [recv(b)[1] for _ in range(500)] == [seq(i) for i in range(500)]
    assert router.link("r0", "r1")["delayed"] == 500


def test_heal_while_queued_keeps_fifo(router: Router) -> None:
    a, b = endpoint(router, "r0"), endpoint(router, "r1")
    router.set_links(("r0", "r1", {"delay": 0.2}))
    for i in range(100):
        a.send_multipart([b"r1", seq(i)])
    barrier(a)  # all 100 are in the delay queue now
    assert router.ctl("stats")["queued"] == 100
    router.set_links()  # the link passes again, but the queued must still go first
    for i in range(100, 200):
        a.send_multipart([b"r1", seq(i)])
    assert [recv(b)[1] for _ in range(200)] == [seq(i) for i in range(200)]


def test_unroutable_destination_is_counted(router: Router) -> None:
    a = endpoint(router, "r0")
    for _ in range(5):
        a.send_multipart([b"ghost", b"boo"])
    barrier(a)
    stats = router.ctl("stats")
    assert stats["unroutable"] == 5
    row = router.link("r0", "ghost")
    assert (row["sent"], row["delivered"], row["dropped"]) == (5, 0, 5)


def test_garbage_on_both_sockets_is_counted_and_survived(router: Router) -> None:
    rng = random.Random(3)
    fuzz = endpoint(router, "fuzz")
    # Data socket: one frame (router sees 2) and 3..5 frames (router sees 4..6) are malformed;
    # two frames with a random destination are well formed but unroutable.
    for _ in range(2000):
        fuzz.send(rng.randbytes(rng.randrange(0, 200)))
    for _ in range(500):
        fuzz.send_multipart([rng.randbytes(rng.randrange(0, 50)) for _ in range(rng.randint(3, 5))])
    for _ in range(300):
        fuzz.send_multipart([b"\xff" + rng.randbytes(8), rng.randbytes(20)])
    barrier(fuzz)
    # Control socket: undecodable bytes, msgpack that is not a map with a string "cmd", and
    # wrong frame counts. The first two kinds get an error reply, the last cannot.
    ctl = router.ctx.socket(zmq.DEALER)
    ctl.setsockopt(zmq.LINGER, 0)
    ctl.connect(router.control)
    junk = [rng.randbytes(rng.randrange(1, 200)) for _ in range(1000)]
    junk += [encode([1, 2]), encode({"cmd": 5}), encode({"nocmd": "ping"}), encode("ping"), b""]
    replies = []
    for i in range(0, len(junk), 100):
        # In chunks, read as we go: a ROUTER socket drops what exceeds its high-water mark
        # (1,000 messages) towards a peer that is not reading yet.
        for raw in junk[i : i + 100]:
            ctl.send(raw)
        replies += [decode_dict(recv(ctl)[0]) for _ in junk[i : i + 100]]
    for _ in range(300):
        ctl.send_multipart([rng.randbytes(10) for _ in range(rng.randint(2, 3))])
    ctl.send(encode({"cmd": "ping"}))  # answered after everything above was handled
    replies.append(decode_dict(recv(ctl)[0]))
    assert all(r["ok"] is False and r["code"] == "malformed" for r in replies[:-1])
    assert replies[-1]["ok"] is True
    stats = router.ctl("stats")
    assert stats["malformed_data"] == 2500
    assert stats["malformed_control"] == len(junk) + 300
    assert stats["malformed"] == 2500 + len(junk) + 300
    assert stats["unroutable"] == 300
    # Raw TCP junk that is not even ZMTP, on both ports. libzmq may parse some of it as old
    # ZMTP 1.0 frames and hand the router "messages", so only survival is asserted here.
    for ep in (router.data, router.control):
        host, port = ep.removeprefix("tcp://").rsplit(":", 1)
        with socket.create_connection((host, int(port))) as s:
            s.sendall(rng.randbytes(65536))
    # Still alive, still counting, still forwarding.
    assert router.ctl("ping")["ok"] is True
    assert router.ctl("stats")["malformed"] >= stats["malformed"]
    a, b = endpoint(router, "r0"), endpoint(router, "r1")
    a.send_multipart([b"r1", b"still here"])
    assert recv(b) == [b"r0", b"still here"]


def test_bad_set_links_is_refused_and_table_kept(router: Router) -> None:
    router.set_links(("r0", "r1", {"drop": True}))
    for links in ("nope", [{"src": "r0", "dst": "r1", "rule": {"loss": 2}}], [{"src": "r0"}]):
        reply = router.ctl("set_links", links=links)
        assert reply["ok"] is False and reply["code"] == "invalid_links", reply
    assert router.ctl("set_links")["ok"] is False
    assert (
        router.ctl("get_links")["links"] == LinkTable({("r0", "r1"): LinkRule(drop=True)}).to_wire()
    )


def test_links_telemetry_reports_counters(router: Router) -> None:
    a, b = endpoint(router, "r0"), endpoint(router, "r1")
    for i in range(10):
        a.send_multipart([b"r1", seq(i)])
    a.send(b"one frame only")
    for _ in range(10):
        recv(b)
    deadline = time.monotonic() + TIMEOUT
    while True:  # events before our traffic was counted may come first
        event = _wait_event(router.telemetry, "router.links", deadline - time.monotonic())
        rows = {(row[0], row[1]): row[2:] for row in event["data"]["links"]}
        if rows.get(("r0", "r1")) == [10, 10, 0, 0, 0] and event["data"]["malformed"] == 1:
            break
    assert event["src"] == "router" and event["data"]["unroutable"] == 0


def test_sigterm_exits_cleanly(router: Router) -> None:
    router.proc.send_signal(signal.SIGTERM)
    assert router.proc.wait(TIMEOUT) == 0


def test_exits_when_parent_dies(ctx: zmq.Context, telemetry: tuple[zmq.Socket, str]) -> None:
    pull, endpoint_ = telemetry
    # An intermediate parent that starts the router (in its own process group) and waits.
    script = textwrap.dedent(
        f"""
        import os, signal, subprocess
        subprocess.Popen({_router_cmd(endpoint_)!r} + ["--parent-pid", str(os.getpid())])
        signal.pause()
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], env=_env(), start_new_session=True)
    try:
        ready = _wait_event(pull, "router.ready")["data"]
        assert psutil.Process(ready["pid"]).ppid() == parent.pid
        parent.send_signal(signal.SIGKILL)
        parent.wait(TIMEOUT)
        assert _wait_gone(ready["pid"]), "router outlived its parent"
    finally:
        _kill_group(parent)


# ------------------------------------------------------------- byte bounds (issue 14, 5)


def test_a_frame_above_the_limit_is_dropped_and_counted(
    ctx: zmq.Context, telemetry: tuple[zmq.Socket, str]
) -> None:
    r = start_router(ctx, telemetry, extra=("--max-frame", "100000"))
    try:
        a, b = endpoint(r, "r0"), endpoint(r, "r1")
        a.send_multipart([b"r1", b"x" * 200_000])  # over the limit: dropped, counted
        a.send_multipart([b"r1", b"small"])
        assert recv(b) == [b"r0", b"small"]
        stats = r.ctl("stats")
        assert stats["oversize"] == 1 and r.link("r0", "r1")["dropped"] == 1
    finally:
        _kill_group(r.proc)


def test_the_delay_queue_is_bounded_in_bytes_per_destination(router: Router) -> None:
    a, _ = endpoint(router, "r0"), endpoint(router, "r1")
    router.set_links(("r0", "r1", {"delay": 30.0}))  # a paused receiver, as far as we care
    for _ in range(100):
        a.send_multipart([b"r1", b"x" * 1_000_000])  # 100 MB offered
    barrier(a)
    stats = router.ctl("stats")
    assert stats["queued_bytes"] <= 64 * 1024 * 1024
    assert stats["queue_full"] >= 30 and stats["queued"] + stats["queue_full"] == 100


def test_a_receiver_that_sends_nothing_is_sent_at_most_the_unread_bound(router: Router) -> None:
    """What libzmq holds for a paused receiver is bounded in bytes, not only in messages:
    past 64 MiB forwarded since its last frame it gets nothing more, until it speaks."""
    a, b = endpoint(router, "r0"), endpoint(router, "r1")  # b reads nothing from here on
    for _ in range(100):
        a.send_multipart([b"r1", b"x" * 1_000_000])  # 100 MB offered
    barrier(a)
    stats = router.ctl("stats")
    assert stats["queue_full"] >= 30  # 64 MiB at most went out to it
    assert router.link("r0", "r1")["delivered"] <= 64 * 1024 * 1024 // 1_000_000
    b.send_multipart([b"r0", b"back"])  # it runs again: it is sent to again
    assert recv(a) == [b"r1", b"back"]
    a.send_multipart([b"r1", b"after"])
    big = 0
    while (payload := recv(b)[1]) != b"after":
        big += 1
        assert len(payload) == 1_000_000
    assert 0 < big <= 64 * 1024 * 1024 // 1_000_000


def test_links_telemetry_sends_only_the_rows_that_moved(router: Router) -> None:
    a, b = endpoint(router, "r0"), endpoint(router, "r1")
    for i in range(300):  # 300 distinct links from r0, then one of them moves again
        a.send_multipart([f"nobody{i}".encode(), seq(i)])
    barrier(a)
    deadline = time.monotonic() + TIMEOUT
    seen: set[tuple[str, str]] = set()
    while len(seen) < 300:  # at most 256 rows a report: the rest follow
        event = _wait_event(router.telemetry, "router.links", deadline - time.monotonic())
        assert len(event["data"]["links"]) <= 256
        seen |= {(row[0], row[1]) for row in event["data"]["links"] if row[1].startswith("nob")}
    a.send_multipart([b"r1", b"again"])
    recv(b)
    while True:
        event = _wait_event(router.telemetry, "router.links", deadline - time.monotonic())
        rows = {(row[0], row[1]) for row in event["data"]["links"]}
        if ("r0", "r1") in rows:
            assert not any(dst.startswith("nobody") for _, dst in rows)
            break
