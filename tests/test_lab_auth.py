"""Issue 14, case 4: who may drive a lab, and who may speak as one of its nodes.

Every socket of a lab asks for the lab's secret at the handshake (nodes/auth.py); the
router takes a frame's source from the name its connection authenticated as; the broker
takes writes only from replicas; the lab's files are its user's alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import zmq

from nodes import auth
from nodes.process import request
from nodes.wire import Codec
from protocols.base import BrokerWrite, ClientRequest, Command
from protocols.raft.messages import MESSAGES as RAFT_MESSAGES
from protocols.raft.messages import AppendEntries
from tests.conftest import CLI, wait_until

PROBE = Path(__file__).with_name("zmtp_probe.py")


def _every_endpoint(cli: CLI) -> list[str]:
    state = cli.state()
    procs = cli.status()["processes"]
    return [state["control"], state["pub"], state["router"],
            *(p["control"] for p in procs.values() if p.get("control"))]  # fmt: skip


def _as_outsider(lab_dir: Path, endpoints: list[str]) -> dict:
    """The probe as uid nobody with the system's python when we can, else as ourselves
    without the secret (still an outsider to the lab's sockets)."""
    argv = [sys.executable, str(PROBE), str(lab_dir), *endpoints]
    system_python = shutil.which("python3", path="/usr/bin:/bin")
    if os.geteuid() == 0 and system_python:
        try:
            pwd.getpwnam("nobody")
            argv = ["su", "-s", "/bin/sh", "nobody", "-c",
                    " ".join([system_python, str(PROBE), str(lab_dir), *endpoints])]  # fmt: skip
        except KeyError:
            pass
    env = {k: v for k, v in os.environ.items() if k != auth.ENV}
    # In a session of its own, so a probe that hangs is killed with `su` and its shell
    # (a timeout of subprocess.run would kill `su` only, leaving the probe behind).
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=60)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the group: su, its shell, the probe
        proc.wait()
        raise
    assert proc.returncode == 0, err
    return json.loads(out)


def test_another_user_cannot_stop_or_drive_a_lab(cli: CLI) -> None:
    cli.up("-n", "3", "-p", "raft")
    endpoints = _every_endpoint(cli)
    seen = _as_outsider(cli.lab_dir, endpoints)
    for ep, result in seen["endpoints"].items():
        assert result["null"] != "accepted" and result["plain"] != "accepted", (ep, result)
    # The lab is still up and still commits.
    assert cli.json("client", "put", "k", "v")["status"] == "ok"
    assert all(n["state"] == "running" for n in cli.status()["nodes"])


def test_the_lab_dir_secret_state_and_wals_are_private(cli: CLI) -> None:
    cli.up("-n", "3", "-p", "raft")
    lab = cli.lab_dir
    run = Path(cli.state()["run_dir"])
    assert stat.S_IMODE(lab.stat().st_mode) == 0o700
    assert stat.S_IMODE((lab / "secrets").stat().st_mode) == 0o700
    for f in [lab / "secrets" / "lab.key", lab / "state.json", run / "events.jsonl",
              *run.glob("data/*/wal.log")]:  # fmt: skip
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def _imposter(ctx: zmq.Context, router: str, secret: bytes, user: str) -> zmq.Socket:
    """A DEALER that picks the ZeroMQ identity "r1" and authenticates as `user`."""
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.IDENTITY, b"r1")
    auth.as_client(sock, secret, user)
    sock.connect(router)
    return sock


def test_an_endpoint_naming_itself_r1_never_gets_r1s_traffic_nor_cuts_it_off(cli: CLI) -> None:
    state = cli.up("-n", "3", "-p", "raft")
    ctx = zmq.Context.instance()
    # The outsider guesses a secret and claims to be r1; the insider holds the secret but
    # authenticates under its own name.
    outsider = _imposter(ctx, state["router"], b"guessed", "r1")
    try:
        insider = _imposter(ctx, state["router"], cli.secret(), "mallory")
    except BaseException:
        outsider.close()
        raise
    codec = Codec(RAFT_MESSAGES)
    try:
        # Both speak first (so the router has seen them), then traffic flows for a while.
        forged = codec.encode(AppendEntries(term=50, prev_index=0, prev_term=0, commit=0))
        for s in (outsider, insider):
            # Never blocking: a DEALER whose handshake was refused has no pipe left to
            # queue on, and a blocking send would then wait forever (seen under load).
            with contextlib.suppress(zmq.Again):
                s.send_multipart([b"r1", forged], zmq.NOBLOCK)
        for i in range(20):
            assert cli.json("client", "put", f"k{i}", "v")["status"] == "ok"
        assert not outsider.poll(200) and not insider.poll(200)  # none of r1's traffic
    finally:
        outsider.close()
        insider.close()
    # r1 took no forged term, and after the imposters left it still follows the leader.
    doc = cli.status()
    assert max(n["term"] for n in doc["nodes"]) < 50
    assert cli.json("client", "put", "after", "v")["status"] == "ok"

    def r1_caught_up() -> bool:
        nodes = {n["id"]: n for n in cli.status()["nodes"]}
        leader = max(nodes.values(), key=lambda n: n["commit_index"] or 0)
        return nodes["r1"]["applied_index"] == leader["commit_index"]

    wait_until(r1_caught_up, timeout=10)
    assert cli.status()["router"]["auth_rejected"] >= 1  # the outsider's handshakes


def test_the_broker_takes_writes_only_from_replicas(cli: CLI) -> None:
    state = cli.up("-n", "3", "-p", "raft", "--fencing")
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    auth.as_client(sock, cli.secret(), "mallory")
    sock.connect(state["router"])
    codec = Codec()
    try:
        sock.send_multipart(
            [b"broker", codec.encode(BrokerWrite(2**63 - 1, "r0", 1, "mallory:1"))]
        )
        broker = cli.status()["processes"]["broker"]["control"]

        def rejected() -> dict | None:
            doc = request(ctx, broker, {"cmd": "stats"}, secret=cli.secret())
            return doc if doc and doc["counters"]["not_replica"] >= 1 else None

        doc = wait_until(rejected, timeout=5)
        assert doc["highest"] < 2**63 - 1 and doc["accepted"] == 0
    finally:
        sock.close()
    # A legitimate order still goes through with the leader's token.
    assert cli.json("client", "order", "--user", "alice", "--qty", "1")["status"] == "ok"


def test_a_client_request_through_an_authenticated_endpoint_is_answered(cli: CLI) -> None:
    """The other side of the coin: the lab's own clients (with the secret) are served,
    and their replies reach the name they authenticated as."""
    state = cli.up("-n", "3", "-p", "raft")
    from nodes.client import Endpoint

    ep = Endpoint(zmq.Context.instance(), state["router"], "c3", secret=cli.secret())
    try:
        leader = wait_until(lambda: cli.status()["leaders"], timeout=10)[0]
        reply = ep.call(leader, Command(request_id="c3:1", client="c3", op="put", key="x",
                                        value="1"), timeout=5.0)  # fmt: skip
        assert reply is not None and reply.status == "ok"
        ep.send(leader, ClientRequest(Command(request_id="c3:2", client="c3", op="get", key="x")))
        got = ep.wait("c3:2", 5.0)
        assert got is not None and got.value == "1"
    finally:
        ep.close()
