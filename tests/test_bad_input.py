"""Bad input gets one clear line and exit 2; garbage on any socket is counted, never fatal."""

from __future__ import annotations

import random

import pytest
import zmq

from nodes import auth
from nodes.process import request
from tests.conftest import CLI, wait_until


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["up", "-d", "-p", "nosuch"], "unknown protocol 'nosuch'"),
        (["up", "-d", "-n", "0"], "--nodes must be between 1 and 15"),
        (["up", "-d", "--opt", "election_timeout=fast"], "not a duration"),
        (["up", "-d", "--opt", "bogus=1"], "unknown option 'bogus'"),
        (["status"], "no lab is running"),
        (["down"], "no lab is running"),
        (["fault", "pause", "r0", "--for", "2x"], "'for': not a duration"),
        (["fault", "loss", "--from", "r0", "--to", "r1", "--p", "1.5"], "between 0 and 1"),
        (["client", "put", "k", "v", "--timeout", "soon"], "--timeout: not a duration"),
    ],
)
def test_bad_input_without_a_lab(cli: CLI, args: list[str], message: str) -> None:
    result = cli.run(*args, check=False)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


def test_bad_input_against_a_running_lab(cli: CLI) -> None:
    cli.up("-n", "3", "-p", "naive")
    for args, message in [
        (["fault", "pause", "r9"], "unknown node 'r9'"),
        (["fault", "partition", "--from", "r0", "--to", "nobody"], "unknown node 'nobody'"),
        (["fault", "resume", "r1"], "r1 is running, not paused"),
        (["client", "get", "k", "--via", "r7"], "unknown node 'r7'"),
        (["fault", "partition", "--from", "r0", "--to", "r0"], "acts on no link"),
    ]:
        result = cli.run(*args, check=False)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.strip().startswith("error: ") and message in result.stderr, (
            result.stderr
        )
    cli.run("fault", "clock", "r1", "--offset", "5ms")
    listed = cli.run("fault", "list").stdout
    assert "healed by: clock r1 --offset 0 --drift 0" in listed and "NODE" not in listed
    cli.run("fault", "clock", "r1", "--offset", "0", "--drift", "0")
    unknown = cli.run("fault", "explode", "r0", check=False)
    assert unknown.returncode == 2
    # The lab is untouched by all of that.
    assert cli.json("client", "put", "k", "v", "--via", "r0")["status"] == "ok"


def _garbage(rng: random.Random) -> list[bytes]:
    return [rng.randbytes(rng.randrange(0, 64)) for _ in range(rng.randrange(1, 5))]


def test_random_bytes_on_every_socket_are_counted_and_dropped(cli: CLI) -> None:
    state = cli.up("-n", "3", "-p", "naive")
    ctx = zmq.Context.instance()
    rng = random.Random(7)
    procs = cli.status()["processes"]
    node_controls = [procs[n]["control"] for n in ("r0", "r1", "r2")]

    targets = [state["router"], state["control"], *node_controls]
    socks = []
    for endpoint in targets:
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        auth.as_client(s, cli.secret(), "fuzz")  # an insider: outsiders cannot connect
        s.connect(endpoint)
        socks.append(s)
    # Data plane: frames addressed to real nodes with garbage payloads, and garbage framing.
    data = socks[0]
    for i in range(3000):
        if i % 3 == 0:
            data.send_multipart(
                [rng.choice([b"r0", b"r1", b"r2"]), rng.randbytes(rng.randrange(0, 80))]
            )
        else:
            data.send_multipart(_garbage(rng))
    for s in socks[1:]:
        for _ in range(1000):
            s.send_multipart(_garbage(rng))
    for s in socks:
        s.close()

    # Everything still works, and the garbage was counted where it landed.
    assert cli.json("client", "put", "k", "v", "--via", "r0")["status"] == "ok"

    def counted() -> bool:
        doc = cli.status()
        node_malformed = sum(n["counters"]["malformed"] for n in doc["nodes"] if "counters" in n)
        return (
            doc["router"].get("malformed", 0) > 0
            and node_malformed > 0
            and doc["counters"]["malformed"] > 0
        )

    wait_until(counted, timeout=3)
    for c in node_controls:
        assert request(ctx, c, {"cmd": "ping"}, secret=cli.secret())["ok"]
