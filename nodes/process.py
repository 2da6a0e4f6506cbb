"""Plumbing every lab process shares: dying with the supervisor, telemetry, control replies.

Children of the supervisor must never outlive it. On Linux the kernel kills them the moment
it dies (PR_SET_PDEATHSIG); elsewhere, and as a second line, `parent_alive` is polled from
each process's loop (a child re-parented to init has lost its supervisor).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
import traceback
from typing import Any

import msgspec
import zmq

from nodes import auth
from nodes.inbound import DECODE_ERRORS, Drops

_PR_SET_PDEATHSIG = 1
_NOBLOCK = int(zmq.NOBLOCK)  # a plain int: pyzmq's flag enums cost on the hot path

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(dict)


def die_with_parent(parent_pid: int | None, sig: int = signal.SIGKILL) -> None:
    """Arrange to get `sig` (SIGKILL: be killed) when `parent_pid` dies; exit now if it
    already has. The supervisor asks for SIGTERM, so it still writes its record."""
    if parent_pid is None:
        return
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the polling in parent_alive still covers us
    # The parent may have died between fork and prctl: then nobody would ever kill us.
    if os.getppid() != parent_pid:
        os._exit(0)


def log(name: str, text: str) -> None:
    """One line in this process's log (its stderr, runs/<run>/logs/<name>.log), stamped
    with wall-clock time so a user can line it up with their own logs (events.jsonl has
    the lab's true time; `labctl runs events` converts)."""
    now = time.time()
    stamp = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"
    sys.stderr.write(f"{stamp} {name} {text}\n")


def on_stop_signals(stop: Any) -> None:
    """Call `stop()` on SIGTERM or SIGINT: every lab process ends its loop the same way."""

    def handler(signum: int, frame: Any) -> None:
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def data_endpoint(
    ctx: zmq.Context, router: str, name: str, hwm: int = 100_000, secret: bytes | None = None
) -> zmq.Socket:
    """A DEALER on the fault router under `name`: how every endpoint (replica, broker,
    client) joins the data plane. Sends [dst, payload]; receives [src, payload].

    With the lab's secret (`secret`, else the process's LABCTL_LAB_KEY) the name is the
    user it authenticates as and its ZeroMQ identity a random handle (faults/router.py);
    the hello (an empty destination) tells the router this connection is where `name`
    lives now, before anything is sent to it. Without one, the identity is the name."""
    secret = secret if secret is not None else auth.env_secret()
    sock = ctx.socket(zmq.DEALER)
    if secret is None:
        sock.setsockopt(zmq.IDENTITY, name.encode())
    else:
        sock.setsockopt(zmq.IDENTITY, b"\x01" + os.urandom(15))  # never a zero first byte
        auth.as_client(sock, secret, name)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)
    sock.connect(router)
    hello(sock)
    return sock


def hello(sock: zmq.Socket) -> None:
    """Tell the router this connection is where this endpoint's name lives. Sent on
    connect, and by long-lived endpoints every second or so: a restarted router (same
    port, the DEALER reconnects by itself) learns a name only from a frame, and an
    endpoint that only answers (the broker) would otherwise never be reachable again."""
    try:
        sock.send_multipart([b"", b""], _NOBLOCK)
    except zmq.Again:
        pass


def parent_alive(parent_pid: int | None) -> bool:
    return parent_pid is None or os.getppid() == parent_pid


def true_now() -> float:
    """The lab's true time: the machine's monotonic clock, shared by every process."""
    return time.monotonic()


class Telemetry:
    """Pushes events to the supervisor. Never blocks: a full queue drops (and counts)."""

    def __init__(
        self, ctx: zmq.Context, endpoint: str | None, src: str, secret: bytes | None = None
    ) -> None:
        self.src = src
        self.dropped = 0
        self.sock: zmq.Socket | None = None
        if endpoint:
            self.sock = ctx.socket(zmq.PUSH)
            auth.as_client(self.sock, secret if secret is not None else auth.env_secret(), src)
            self.sock.setsockopt(zmq.LINGER, 500)
            self.sock.setsockopt(zmq.SNDHWM, 10000)
            self.sock.connect(endpoint)

    def emit(self, kind: str, t: float | None = None, **data: Any) -> None:
        if self.sock is None:
            return
        msg = {"src": self.src, "t": true_now() if t is None else t, "kind": kind, "data": data}
        try:
            self.sock.send(_encoder.encode(msg), _NOBLOCK)
        except zmq.Again:
            self.dropped += 1

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


def encode(obj: Any) -> bytes:
    return _encoder.encode(obj)


def decode_dict(raw: bytes) -> dict[str, Any]:
    """Decode a control or telemetry message; raises msgspec.DecodeError on garbage."""
    obj = _decoder.decode(raw)
    return obj


def ok(**data: Any) -> dict[str, Any]:
    """The one reply envelope for control commands: success..."""
    return {"ok": True, **data}


def error(reason: str, code: str = "bad_request") -> dict[str, Any]:
    """...or failure with a human reason and a machine code."""
    return {"ok": False, "error": reason, "code": code}


def control_socket(ctx: zmq.Context, secret: bytes | None = None) -> tuple[zmq.Socket, str]:
    """A process's control ROUTER on a kernel-chosen port of 127.0.0.1, authenticated when
    the process has the lab's secret (its context must run an auth.Zap then)."""
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    auth.as_server(sock, secret if secret is not None else auth.env_secret())
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    return sock, f"tcp://127.0.0.1:{port}"


def serve_control(sock: zmq.Socket, handle: Any, counters: dict[str, int]) -> None:
    """Answer every pending request on a ROUTER control socket without blocking.

    `handle(request_dict) -> reply_dict`. Garbage (wrong frame count, undecodable bytes, not
    a map with a "cmd") is counted in counters["malformed"] and answered with an error when
    there is someone to answer; it never raises. A request the handler answers with an
    error is counted in counters["refused"]. A request the handler chokes on (a value
    of a type it did not expect) is answered "bad request" and counted in
    counters["bad_requests"]; the first of each exception type is logged with its
    traceback, because it is a bug to fix in the handler's checks, not input to trust.
    """
    while True:
        try:
            frames = sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return
        if len(frames) != 2:
            counters["malformed"] = counters.get("malformed", 0) + 1
            _control_drops.drop("control_framing", f"{len(frames) - 1} frames")
            continue
        ident, raw = frames
        try:
            request = decode_dict(raw)
            if not isinstance(request.get("cmd"), str):
                raise ValueError("no cmd")
        except (*DECODE_ERRORS, AttributeError) as e:
            counters["malformed"] = counters.get("malformed", 0) + 1
            _control_drops.drop("control_undecodable", repr(e))
            _send_reply(sock, ident, error("malformed request", "malformed"))
            continue
        try:
            answer = handle(request)
        except Exception as e:  # no request may end the process
            counters["bad_requests"] = counters.get("bad_requests", 0) + 1
            if type(e) not in _logged:
                _logged.add(type(e))
                traceback.print_exc(file=sys.stderr)
            answer = error(f"bad request: {type(e).__name__}: {str(e)[:200]}")
        else:
            if not answer.get("ok"):
                counters["refused"] = counters.get("refused", 0) + 1
        _send_reply(sock, ident, answer)


_logged: set[type] = set()  # exception types serve_control has logged already
_control_drops = Drops("control")  # logs the first of each kind of garbage, once


def _send_reply(sock: zmq.Socket, ident: bytes, answer: dict[str, Any]) -> None:
    try:
        sock.send_multipart([ident, _encoder.encode(answer)], zmq.NOBLOCK)
    except zmq.ZMQError:
        pass  # the asker is gone; nothing to tell


def request(
    ctx: zmq.Context,
    endpoint: str,
    payload: dict[str, Any],
    timeout: float = 5.0,
    secret: bytes | None = None,
) -> dict[str, Any] | None:
    """One control request/reply round (DEALER, LINGER 0); None when nobody answers in time.
    Authenticated with `secret`, else the process's own (LABCTL_LAB_KEY), if any."""
    return request_all(ctx, {endpoint: endpoint}, payload, timeout, secret)[endpoint]


def request_all(
    ctx: zmq.Context,
    endpoints: dict[str, str],
    payload: dict[str, Any],
    timeout: float = 5.0,
    secret: bytes | None = None,
) -> dict[str, dict[str, Any] | None]:
    """The same request to several processes (name -> control endpoint) at once: every one
    is sent before any answer is awaited, so they all receive it within one send loop (the
    lab's start barrier releases its replicas together). Answers by name; None for one that
    did not answer within `timeout` of the sending."""
    secret = secret if secret is not None else auth.env_secret()
    socks: dict[str, zmq.Socket] = {}
    answers: dict[str, dict[str, Any] | None] = dict.fromkeys(endpoints)
    try:
        for name, endpoint in endpoints.items():
            sock = socks[name] = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            auth.as_client(sock, secret, "control")
            sock.connect(endpoint)
        raw = _encoder.encode(payload)
        for sock in socks.values():
            sock.send(raw)
        poller = zmq.Poller()
        for sock in socks.values():
            poller.register(sock, zmq.POLLIN)
        deadline = time.monotonic() + timeout
        waiting = dict(socks)
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready = dict(poller.poll(int(left * 1000) + 1))
            for name, sock in list(waiting.items()):
                if sock in ready:
                    answers[name] = decode_dict(sock.recv())
                    poller.unregister(sock)
                    del waiting[name]
        return answers
    finally:
        for sock in socks.values():
            sock.close()
