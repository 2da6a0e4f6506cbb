"""The TCP fault proxy (faults/tcpproxy.py) keyed by source address, on loopback: a test
client binds 127.0.0.2 (r0) or 127.0.0.3 (r1) as its source, so no namespace (and no
root) is needed to tell the senders apart. What a user of an etcd lab relies on: a
one-way partition stalls one direction of a connection and not the other, never resets
it, and what was held arrives after the heal; delay shows in the round trip; a stranger's
connection is closed."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from faults.linkplan import link_table
from faults.model import parse_fault
from nodes.process import request
from tests.conftest import slack, wait_until

R0, R1, STRANGER = "127.0.0.2", "127.0.0.3", "127.0.0.9"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Upstream:
    """r1's server: echoes what it reads and keeps it (what crossed r0 -> r1)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received = bytearray()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.echo, args=(conn,), daemon=True).start()

    def echo(self, conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                self.received += data
                conn.sendall(data)


@pytest.fixture
def proxy() -> Iterator[dict[str, Any]]:
    up = Upstream()
    port = free_port()
    spec = {"listen": [{"dst": "r1", "host": "127.0.0.1", "port": port,
                        "upstream": ["127.0.0.1", up.port]}],
            "sources": {R0: "r0", R1: "r1"}}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "faults.tcpproxy", "--spec", json.dumps(spec)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    ctx = zmq.Context()
    try:
        wait_until(lambda: _listening(port), timeout=10)
        yield {"port": port, "up": up, "ctx": ctx, "proc": proc}
    finally:
        proc.kill()
        proc.wait()
        ctx.term()
        up.sock.close()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def set_faults(p: dict[str, Any], *specs: dict[str, Any]) -> None:
    """The supervisor's path: faults of the lab's vocabulary, folded into one link table
    (none: everything heals)."""
    table = link_table([parse_fault(s) for s in specs])
    answer = request(p["ctx"], p["control"], {"cmd": "set_links", "links": table}, 5.0)
    assert answer and answer["ok"], answer


def connect(p: dict[str, Any], source: str) -> socket.socket:
    s = socket.socket()
    s.bind((source, 0))
    s.connect(("127.0.0.1", p["port"]))
    s.settimeout(slack(5.0))
    return s


def recv_exactly(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


@pytest.fixture
def p(proxy: dict[str, Any]) -> dict[str, Any]:
    line = proxy["proc"].stdout.readline().decode()  # "listening; control tcp://..."
    assert "control tcp://" in line, line
    proxy["control"] = line.split("control ", 1)[1].strip()
    return proxy


def test_bytes_pass_untouched_without_faults(p: dict[str, Any]) -> None:
    with connect(p, R0) as s:
        s.sendall(b"hello")
        assert recv_exactly(s, 5) == b"hello"


def test_one_way_partition_stalls_one_direction_without_a_reset(p: dict[str, Any]) -> None:
    with connect(p, R0) as s:
        set_faults(p, {"fault": "partition", "from": "r1", "to": "r0", "oneway": True})
        s.sendall(b"ping")
        # r0 -> r1 still flows: the upstream gets the bytes...
        wait_until(lambda: bytes(p["up"].received) == b"ping", timeout=5)
        # ...but its answer (r1 -> r0) is held: nothing comes back, and nothing resets.
        s.settimeout(0.5)
        with pytest.raises(TimeoutError):
            s.recv(10)
        set_faults(p)  # heal: what was held arrives, on the same connection
        s.settimeout(slack(5.0))
        assert recv_exactly(s, 4) == b"ping"


def test_partition_from_the_sender_holds_its_bytes_until_the_heal(p: dict[str, Any]) -> None:
    with connect(p, R0) as s:
        set_faults(p, {"fault": "partition", "from": "r0", "to": "r1", "oneway": True})
        s.sendall(b"held")
        time.sleep(0.5)  # the time in which the bytes would have crossed: they must not
        assert bytes(p["up"].received) == b""
        set_faults(p)
        assert recv_exactly(s, 4) == b"held"


def test_delay_shows_in_the_round_trip(p: dict[str, Any]) -> None:
    set_faults(p, {"fault": "delay", "from": "r0", "to": "r1", "ms": 300})
    with connect(p, R0) as s:
        t0 = time.monotonic()
        s.sendall(b"x")
        assert recv_exactly(s, 1) == b"x"
        assert time.monotonic() - t0 >= 0.29


def test_a_member_dialling_itself_is_closed(p: dict[str, Any]) -> None:
    with connect(p, R1) as s:  # r1 -> r1 is no link of the lab
        s.settimeout(2.0)
        assert s.recv(1) == b""


def test_a_stranger_is_closed(p: dict[str, Any]) -> None:
    with connect(p, STRANGER) as s:
        s.settimeout(2.0)
        assert s.recv(1) == b""


def test_loss_is_a_retransmission_delay_not_lost_bytes(p: dict[str, Any]) -> None:
    # TCP retransmits a lost segment: the stream arrives whole, one RTO (200 ms) late.
    set_faults(p, {"fault": "loss", "from": "r0", "to": "r1", "p": 1.0})
    with connect(p, R0) as s:
        t0 = time.monotonic()
        s.sendall(b"abc")
        assert recv_exactly(s, 3) == b"abc"
        assert time.monotonic() - t0 >= 0.19
