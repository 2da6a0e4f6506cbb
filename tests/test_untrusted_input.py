"""Issue 14's input cases: what one message, one fault value or one client request from
outside a process used to do to a lab, each as the regression test of its fix."""

from __future__ import annotations

import json
import random
from pathlib import Path

import msgspec
import psutil
import pytest
import zmq

from faults.model import FaultError, parse_fault
from nodes import auth
from nodes.client import Endpoint, new_request_id
from nodes.process import request
from nodes.state_machine import StateMachine
from protocols.base import ClientRequest, Command
from tests.conftest import CLI, wait_until


def _telemetry_endpoint(cli: CLI) -> str:
    """The supervisor's telemetry endpoint, as anyone reads it: on every child's command
    line."""
    sup = psutil.Process(cli.state()["supervisor_pid"])
    argv = sup.children()[0].cmdline()
    return argv[argv.index("--telemetry") + 1]


def _push(endpoint: str, messages: list[bytes]) -> None:
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.PUSH)
    s.setsockopt(zmq.LINGER, 2000)
    auth.as_client(s, auth.env_secret(), "fuzz")  # an insider: outsiders cannot connect
    s.connect(endpoint)
    for m in messages:
        s.send(m)
    s.close()  # lingers until sent


def _alive(cli: CLI) -> bool:
    return all(p["state"] == "running" for p in cli.status()["processes"].values())


def test_a_router_ready_from_a_stranger_is_counted_and_the_lab_runs_on(cli: CLI) -> None:
    cli.up("-n", "3", "-p", "naive")
    msg = {"src": "x", "kind": "router.ready", "t": 0, "data": {}}
    _push(_telemetry_endpoint(cli), [msgspec.msgpack.encode(msg)])
    wait_until(lambda: cli.status()["dropped"].get("bad_router.ready") == 1)
    # A well-formed one from a stranger does not repoint the data plane either.
    msg["data"] = {"data": "tcp://127.0.0.1:1", "control": "tcp://127.0.0.1:1"}
    _push(_telemetry_endpoint(cli), [msgspec.msgpack.encode(msg)])
    wait_until(lambda: cli.status()["dropped"].get("unexpected_ready") == 1)
    assert cli.json("client", "put", "k", "v")["status"] == "ok"
    assert _alive(cli)


def test_telemetry_maps_with_none_or_bytes_keys_are_dropped_and_down_writes_the_summary(
    cli: CLI,
) -> None:
    cli.up("-n", "3", "-p", "naive")
    run_dir = Path(cli.state()["run_dir"])
    rng = random.Random(14)
    bad: list[bytes] = []
    for i in range(500):
        key = rng.choice([None, b"\xff", 7, 1.5, (1, 2), True])
        kind = rng.choice(["node.status", "history", "broker.write", "lease", "x.y"])
        data = {"nested": {key: 1}} if i % 2 else {"v": [{key: "x"}]}
        bad.append(msgspec.msgpack.encode({"src": "r1", "kind": kind, "t": 1.0, "data": data}))
    # msgpack decodes a map key that is itself a map as unhashable: garbage at any depth.
    bad.append(b"\x84\xa3src\xa2r1\xa4kind\xa1k\xa1t\x01\xa4data\x81\x81\x01\x02\x01")
    bad.append(b"\x84\xa3src\xa2r1\xa4kind\xa1k\xa1t\x01\xa4data" + b"\x91" * 100_000)
    _push(_telemetry_endpoint(cli), bad)
    wait_until(lambda: cli.status()["counters"]["malformed"] >= len(bad), timeout=10)
    assert _alive(cli)
    assert cli.json("client", "put", "k", "v")["status"] == "ok"
    down = cli.run("down", check=False)
    assert down.returncode == 0, down.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["counters"]["malformed"] >= len(bad)
    assert summary["dropped"]["not_plain"] >= 500
    assert not (cli.lab_dir / "state.json").exists()
    for line in (run_dir / "events.jsonl").read_text().splitlines():
        json.loads(line)  # the record stayed JSON


def test_down_fails_when_the_lab_wrote_no_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labctl import api
    from labctl.errors import LabFailed
    from nodes import auth

    gone = psutil.Popen(["true"])
    gone.wait()
    auth.create_secret(tmp_path)  # a lab dir always holds its secret (Lab reads it)
    lab = api.Lab(tmp_path, {"supervisor_pid": gone.pid, "control": "tcp://127.0.0.1:1"})
    monkeypatch.setattr(api, "request", lambda *a, **k: {"ok": True, "run_dir": str(tmp_path)})
    with pytest.raises(LabFailed, match="without writing its summary"):
        lab.down()
    (tmp_path / "summary.json").write_text("{}")
    assert lab.down()["ok"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"fault": "disk", "fsync": "99999999999999999999h"}, "'fsync' must be at most 60s"),
        ({"fault": "disk", "stall": "25h"}, "'stall' must be at most 1 day"),
        ({"fault": "disk", "stall": float("inf")}, "'stall': not a finite duration"),
        ({"fault": "clock", "offset": "abc"}, "'offset': not a duration"),
        ({"fault": "clock", "offset": float("inf")}, "'offset' must be a finite duration"),
        ({"fault": "clock", "offset": "-25h"}, "'offset' must be within -1 day"),
        ({"fault": "clock", "drift": float("nan")}, "'drift' must be greater than -1"),
        ({"fault": "clock", "drift": "nan"}, "'drift' must be greater than -1"),
        ({"fault": "clock", "drift": 11}, "at most 10"),
        ({"fault": "pause", "for": 10**400}, "'for': not a finite duration"),
        ({"fault": "delay", "from": "r0", "to": "r1", "ms": 1e300}, "'ms' must be at most"),
        ({"fault": "loss", "from": "r0", "to": "r1", "p": True}, "'p' must be a probability"),
        ({"fault": ["pause"]}, "unknown fault"),
    ],
)
def test_absurd_fault_values_are_refused_in_the_vocabulary(spec: dict, message: str) -> None:
    if spec["fault"] in ("disk", "clock", "pause"):
        spec = {**spec, "node": "r0"}
    with pytest.raises(FaultError, match=message.replace("(", r"\(")):
        parse_fault(spec)


def test_absurd_fault_values_are_refused_alike_by_the_cli_and_a_replicas_control_socket(
    cli: CLI,
) -> None:
    cli.up("-n", "3", "-p", "naive")
    for args in (
        ["fault", "disk", "r2", "--fsync", "99999999999999999999h"],
        ["fault", "clock", "r2", "--drift", "nan"],
        ["fault", "clock", "r2", "--offset", "inf"],
        ["fault", "disk", "r2", "--stall", "inf"],
    ):
        result = cli.run(*args, check=False)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    # The node's own control socket, which any local process can reach, refuses the same
    # values with the same words instead of acking them and dying at the next fsync.
    ctx = zmq.Context.instance()
    control = cli.status()["processes"]["r2"]["control"]
    cli_error = cli.run("fault", "disk", "r2", "--fsync", "100000h", check=False).stderr
    answer = request(ctx, control, {"cmd": "disk", "fsync": 1e20})
    assert answer is not None and not answer["ok"]
    assert answer["error"].split(", got")[0] in cli_error  # 'fsync' must be at most 60s
    for bad in ({"cmd": "clock", "offset": "abc"}, {"cmd": "clock", "drift": [1]},
                {"cmd": "disk", "stall": 1e300}, {"cmd": "disk", "fsync": -1}):  # fmt: skip
        answer = request(ctx, control, bad)
        assert answer is not None and answer["ok"] is False, (bad, answer)
    assert cli.json("client", "put", "k", "v", "--via", "r0")["status"] == "ok"
    assert _alive(cli)
    # A fault in range still works, and comes back after a restart without a crash loop.
    cli.run("fault", "disk", "r2", "--fsync", "5ms")
    cli.run("fault", "restart", "r2")
    assert cli.status()["processes"]["r2"]["state"] == "running"


def test_an_unknown_op_is_answered_fail_and_never_applied() -> None:
    sm = StateMachine()
    result = sm.apply(1, 1, Command("q1", "c", "explode", "k", "v"))
    assert result.status == "fail" and sm.kv == {}


@pytest.mark.parametrize("protocol", ["naive", "pbft", "raft", "epaxos"])
def test_an_unknown_op_is_answered_fail_by_every_protocol_and_ends_no_replica(
    cli: CLI, protocol: str
) -> None:
    state = cli.up("-p", protocol)
    nodes = state["nodes"]
    leader = (cli.status()["leaders"] or nodes)[0]
    ep = Endpoint(zmq.Context.instance(), state["router"])
    try:
        cmd = Command(new_request_id(ep.name), ep.name, "explode", "k", "v")
        for node in nodes if protocol == "pbft" else [leader]:
            ep.send(node, ClientRequest(cmd))
        reply = ep.wait(cmd.request_id, 5.0)
        assert reply is not None and reply.status == "fail" and "unknown op" in (reply.error or "")
    finally:
        ep.close()
    assert cli.json("client", "put", "k", "v")["status"] == "ok"
    assert _alive(cli)
    # Nothing poisoned the WAL: the node comes back, and the lab takes writes again
    # (leadership may move across the restart, so a write can first meet not_leader).
    cli.run("fault", "restart", leader)
    wait_until(lambda: cli.json("client", "put", "k", "v2", check=False)["status"] == "ok", 15)
    assert cli.status()["processes"][leader]["state"] == "running"


def test_labctl_client_operations_reach_the_live_checkers(cli: CLI) -> None:
    from labctl.checkers import check_run_dir

    cli.up("-n", "3", "-p", "raft")
    run_dir = Path(cli.state()["run_dir"])
    for i in range(5):
        assert cli.json("client", "put", f"k{i}", "v")["status"] == "ok"
    assert cli.json("client", "get", "k0")["status"] == "ok"
    # A record that is not one (no type, a key that is not a string) is refused, not
    # written where the offline check would read what the live one never saw.
    ctx = zmq.Context.instance()
    answer = request(ctx, cli.state()["control"], {"cmd": "history", "record": {"t": 1}})
    assert answer is not None and answer["ok"] is False
    cli.run("down")
    summary = json.loads((run_dir / "summary.json").read_text())
    lines = (run_dir / "history.jsonl").read_text().splitlines()
    assert len(lines) == 12  # an invoke and a completion each
    assert summary["checkers"]["records"]["history"] == len(lines)
    offline = check_run_dir(run_dir)
    assert offline["records"]["history"] == summary["checkers"]["records"]["history"]
    assert offline["linearizability"]["ops"] == summary["checkers"]["linearizability"]["ops"] == 6


_SCENARIO = 'name = "t"\nprotocol = "raft"\nduration = "5s"\n'


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ('name = "t"\nduration = [1]\n', "duration", "not a duration"),
        (_SCENARIO + "[options]\nraft = 5\n", "options.raft", "must be a table"),
        (_SCENARIO + '[[step]]\nat = "1s"\nfault = "pause"\nnode = "r0"\nfor = [1]\n',
         "step[0]", "'for': not a duration"),
        ('name = "t"\nduration = nan\n', "duration", "not a finite duration"),
        ('name = "t"\nduration = inf\n', "duration", "not a finite duration"),
        ('name = "t"\nduration = "100000h"\n', "duration", "at most 24h"),
        (_SCENARIO + '[[step]]\nat = inf\nfault = "kill"\nnode = "r0"\n', "step[0].at",
         "not a finite duration"),
        (_SCENARIO + '[[step]]\nat = nan\nfault = "kill"\nnode = "r0"\n', "step[0].at",
         "not a finite duration"),
        ('name = "../../../../escape"\n', "name", "must be letters, digits"),
        (_SCENARIO + "[workload]\ntarget = [1]\n", "workload.target", "must be a string"),
        (_SCENARIO + "[workload]\ntimeout = inf\n", "workload.timeout", "not a finite"),
        (_SCENARIO + '[[step]]\nat = "1s"\nfault = "disk"\nnode = "r0"\nstall = "2d"\n',
         "step[0]", "'stall': not a duration"),
        (_SCENARIO + '[[step]]\nat = "1s"\nfault = "disk"\nnode = "r0"\nstall = "25h"\n',
         "step[0]", "'stall' must be at most 1 day"),
        (_SCENARIO + "seed = 99999999999999999999\n", "seed", "must be between 0 and"),
        ('name = "t"\nx = ' + "[" * 3000 + "]" * 3000 + "\n", "", "nested too deeply"),
    ],
)  # fmt: skip
def test_a_bad_scenario_is_one_line_and_exit_2_before_anything_starts(
    cli: CLI, tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = cli.run("scenario", "run", str(path), check=False)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    head = f"error: {path}: {key}: " if key else f"error: {path}: "
    assert lines[0].startswith(head) and problem in lines[0], lines[0]
    assert not (cli.lab_dir / "runs").exists() and not (tmp_path.parent / "escape").exists()


def test_labctl_check_refuses_a_run_it_cannot_read(cli: CLI, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "events.jsonl").write_bytes(random.Random(1).randbytes(5000))
    result = cli.run("check", str(run), check=False)
    assert result.returncode == 2 and "events.jsonl" in result.stderr, result.stderr
    (run / "events.jsonl").write_text('{"t": 1, "src": "r0", "kind": "x"}\n')
    (run / "lab.json").write_text("{not json")
    result = cli.run("check", str(run), check=False)
    assert result.returncode == 2 and "lab.json: cannot read it" in result.stderr, result.stderr
    (run / "lab.json").write_text('{"config": {}}')
    result = cli.run("check", str(run), check=False)
    assert result.returncode == 2 and "not a lab record" in result.stderr, result.stderr
    (run / "lab.json").write_text('{"config": {"protocol": "raft"}}')
    assert cli.json("check", str(run))["protocol"] == "raft"
