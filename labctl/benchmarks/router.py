"""Benchmark of the fault router: latency it adds per hop, and its forwarding rate.

    python -m labctl.benchmarks.router [--messages N] [--pings N] [--auth] [--trace]
    labctl bench core                                                (this plus lifecycle)

Latency: ping-pong round trips from this process to an echo process, once over a direct
pyzmq DEALER -> ROUTER connection and once through the router (DEALER -> router -> DEALER
and back), in interleaved blocks so both see the same machine noise. A round trip crosses
two hops either way; through the router each hop also crosses the router process, so the
added latency per hop is (routed RTT - direct RTT) / 2, reported at p50 and p99.

Rate: a sender process blasts `messages` payloads through the router to a receiver here;
the rate is counted at the receiver, from its first message to its last.

The router is spawned with the same CLI the supervisor uses and always killed at the end.
With --auth it runs as in a lab: every connection authenticates with the lab's secret
(ZAP/PLAIN, nodes/auth.py) and is named by it; `labctl bench core` measures both. With
--trace it records the message trace (faults/trace.py) into a temporary file, as a lab's
router does, and the result says how many frames the trace kept.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager, suppress
from typing import Any

import psutil
import zmq

from labctl.children import python_command
from nodes import auth
from nodes.process import decode_dict, die_with_parent, request

PAYLOAD = b"x" * 100
BLOCK = 500  # pings per block before switching between direct and routed


def _spawn(args: list[str], stdout: int | None = None) -> subprocess.Popen[bytes]:
    # The secret, if this run uses one, goes to the children in their environment.
    return subprocess.Popen([*python_command(), *args], start_new_session=True, stdout=stdout,
                            env=dict(os.environ))  # fmt: skip


def _helper(role: str, router: str, *extra: str) -> subprocess.Popen[bytes]:
    """This file again, as a helper process that dies with us."""
    args = [
        "-m",
        "labctl.benchmarks.router",
        "--role",
        role,
        "--router",
        router,
        "--parent-pid",
        str(os.getpid()),
    ]
    return _spawn([*args, *extra], stdout=subprocess.PIPE)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(5)


@contextmanager
def _router(ctx: zmq.Context, trace: str | None = None) -> Any:
    """Start the router as the supervisor would; yield its endpoints; always kill it."""
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    secret = auth.env_secret()
    auth.serve(ctx, secret)  # the router's telemetry authenticates, as to a supervisor
    auth.as_server(pull, secret)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    proc = _spawn(
        ["-m", "faults.router", "--telemetry", f"tcp://127.0.0.1:{port}",
         "--parent-pid", str(os.getpid()), "--seed", "1"]
        + (["--trace", trace] if trace else [])
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            if not pull.poll(max(1, int((deadline - time.monotonic()) * 1000))):
                raise RuntimeError("router did not report ready in 10 s")
            event = decode_dict(pull.recv())
            if event.get("kind") == "router.ready":
                break
        yield event["data"]
    finally:
        _kill(proc)
        pull.close()


def _endpoint(ctx: zmq.Context, router: str, name: bytes) -> zmq.Socket:
    """A DEALER named `name` on the router, registered: it has heard itself through it."""
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    secret = auth.env_secret()
    if secret is None:
        sock.setsockopt(zmq.IDENTITY, name)
    else:  # as a lab endpoint: a random handle, the name is who it authenticates as
        sock.setsockopt(zmq.IDENTITY, b"\x01" + os.urandom(15))
        auth.as_client(sock, secret, name.decode())
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.connect(router)
    sock.send_multipart([name, b"hello"])
    if not sock.poll(5000):
        raise RuntimeError(f"{name!r} could not reach itself through the router")
    sock.recv_multipart()
    return sock


def _percentile(sorted_values: list[float], q: float) -> float:
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


# ------------------------------------------------------------------ helper processes


def _echo_main(router: str) -> None:
    """Echo on a plain ROUTER (direct path) and on a DEALER named 'echo' (routed path)."""
    ctx = zmq.Context()
    direct = ctx.socket(zmq.ROUTER)
    port = direct.bind_to_random_port("tcp://127.0.0.1")
    routed = _endpoint(ctx, router, b"echo")
    print(port, flush=True)  # tells the bench both paths are ready
    poller = zmq.Poller()
    poller.register(direct, zmq.POLLIN)
    poller.register(routed, zmq.POLLIN)
    while True:
        for sock, _ in poller.poll():
            # Both paths echo the same two frames: [peer, payload].
            sock.send_multipart(sock.recv_multipart())


def _sender_main(router: str, messages: int) -> None:
    ctx = zmq.Context()
    sock = _endpoint(ctx, router, b"blaster")
    send = sock.send
    # Frame by frame: send_multipart's per-call checks would make the sender the bottleneck.
    for i in range(messages):
        send(b"sink", zmq.SNDMORE)
        send(i.to_bytes(8, "big") + PAYLOAD)
    sock.close(linger=10_000)  # let the queue drain before exiting
    ctx.term()


# ------------------------------------------------------------------------ measurements


def _rtts(sock: zmq.Socket, frames: list[bytes], n: int) -> list[float]:
    out = []
    clock = time.perf_counter
    for _ in range(n):
        t0 = clock()
        sock.send_multipart(frames)
        sock.recv_multipart()
        out.append(clock() - t0)
    return out


def measure_latency(ctx: zmq.Context, router: str, pings: int) -> dict[str, float]:
    echo = _helper("echo", router)
    try:
        assert echo.stdout is not None
        port = echo.stdout.readline().strip().decode()
        if not port:
            raise RuntimeError("echo process did not start")
        direct = ctx.socket(zmq.DEALER)
        direct.setsockopt(zmq.LINGER, 0)
        direct.connect(f"tcp://127.0.0.1:{port}")
        routed = _endpoint(ctx, router, b"pinger")
        direct_frames = [PAYLOAD]
        routed_frames = [b"echo", PAYLOAD]
        _rtts(direct, direct_frames, 200)  # warm both paths (connections, caches)
        _rtts(routed, routed_frames, 200)
        d: list[float] = []
        r: list[float] = []
        while len(d) < pings:
            n = min(BLOCK, pings - len(d))
            d += _rtts(direct, direct_frames, n)
            r += _rtts(routed, routed_frames, n)
        direct.close()
        routed.close()
    finally:
        _kill(echo)
    d.sort()
    r.sort()
    us = 1e6

    def hop(values: list[float], q: float) -> float:
        return _percentile(values, q) / 2 * us

    return {
        "pings": pings,
        "direct_hop_p50_us": round(hop(d, 0.5), 1),
        "direct_hop_p99_us": round(hop(d, 0.99), 1),
        "routed_hop_p50_us": round(hop(r, 0.5), 1),
        "routed_hop_p99_us": round(hop(r, 0.99), 1),
        "added_per_hop_p50_us": round(hop(r, 0.5) - hop(d, 0.5), 1),
        "added_per_hop_p99_us": round(hop(r, 0.99) - hop(d, 0.99), 1),
    }


def measure_rate(ctx: zmq.Context, endpoints: dict[str, str], messages: int) -> dict[str, Any]:
    sink = _endpoint(ctx, endpoints["data"], b"sink")
    router = psutil.Process(int(endpoints["pid"]))
    cpu0 = router.cpu_times()
    sender = _helper("sender", endpoints["data"], "--messages", str(messages))
    got = 0
    first = last = 0.0
    in_order = True
    try:
        # Frame by frame, payload zero-copy: recv_multipart would make us the bottleneck.
        recv = sink.recv
        clock = time.perf_counter
        while got < messages:
            try:
                recv(zmq.NOBLOCK)  # the sender's name
            except zmq.Again:
                # Nothing for 3 s: the rest was dropped (counted by the router), stop here.
                if not sink.poll(3000):
                    break
                continue
            payload = recv(zmq.NOBLOCK, copy=False).buffer
            last = clock()
            if got == 0:
                first = last
            if in_order and int.from_bytes(payload[:8], "big") != got:
                in_order = False
            got += 1
        cpu1 = router.cpu_times()
    finally:
        _kill(sender)
        sink.close()
    router_cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    stats = request(ctx, endpoints["control"], {"cmd": "stats"}) or {}
    totals = stats.get("totals", {})
    return {
        "messages": messages,
        "received": got,
        "in_order": in_order,
        "router_dropped": totals.get("dropped"),
        "msgs_per_s": round((got - 1) / (last - first)) if got > 1 and last > first else None,
        # CPU the router spent per message forwarded: less noisy than the rate on a busy box.
        "router_cpu_us_per_msg": round(router_cpu / got * 1e6, 2) if got else None,
        "trace_kept": stats.get("trace_kept"),
    }


def run(
    messages: int = 50000, pings: int = 5000, authenticated: bool = False, trace: bool = False
) -> dict[str, Any]:
    """One full benchmark run; spawns and always cleans up the router and helpers. With
    `authenticated`, the router and every endpoint use a fresh lab secret."""
    saved = os.environ.pop(auth.ENV, None)
    if authenticated:
        os.environ[auth.ENV] = os.urandom(32).hex()
    ctx = zmq.Context()
    try:
        with tempfile.TemporaryDirectory(prefix="labctl-router-trace-") as tmp:
            path = os.path.join(tmp, "trace.bin") if trace else None
            with _router(ctx, path) as endpoints:
                latency = measure_latency(ctx, endpoints["data"], pings)
                rate = measure_rate(ctx, endpoints, messages)
    finally:
        auth.destroy(ctx)
        os.environ.pop(auth.ENV, None)
        if saved is not None:
            os.environ[auth.ENV] = saved
    return {"latency": latency, "rate": rate, "cpus": os.cpu_count(), "auth": authenticated,
            "trace": trace, "load": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=50000)
    p.add_argument("--pings", type=int, default=5000)
    p.add_argument("--auth", action="store_true", help="as in a lab: ZAP/PLAIN, named by it")
    p.add_argument("--trace", action="store_true", help="the router records the message trace")
    p.add_argument("--role", choices=["echo", "sender"], help=argparse.SUPPRESS)
    p.add_argument("--router", help=argparse.SUPPRESS)
    p.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.role:
        die_with_parent(args.parent_pid)
    if args.role == "echo":
        _echo_main(args.router)
    elif args.role == "sender":
        _sender_main(args.router, args.messages)
    else:
        print(json.dumps(run(args.messages, args.pings, args.auth, args.trace)))


if __name__ == "__main__":
    main()
