"""External nodes end to end: small Maelstrom programs of our own (tests/maelstrom_nodes/)
run as replicas under the lab's faults, judged by the checkers, and programs that break
the protocol reported without taking the lab down."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.conftest import CLI, wait_until

NODES = Path(__file__).parent / "maelstrom_nodes"
PY = sys.executable


def program(name: str) -> str:
    return f"{PY} {NODES / name}"


def scenario(tmp_path: Path, name: str, command: str, body: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(f'name = "{name}"\nnodes = 3\n{body}\n[node]\ncommand = "{command}"\n')
    return path


def user_cli(cli: CLI, *args: str) -> subprocess.CompletedProcess:
    """`labctl ARGS` as from a user's shell: without the lab key conftest's CLI passes on
    (which hid that `labctl client` did not present the lab's secret)."""
    from nodes import auth

    env = {k: v for k, v in os.environ.items() if k != auth.ENV}
    env["LABCTL_DIR"] = str(cli.lab_dir)
    return subprocess.run([PY, "-m", "labctl.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def run_scenario(cli: CLI, path: Path) -> dict:
    result = cli.run("scenario", "run", str(path), "--json", check=False, timeout=90)
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


PARTITION = """duration = "5s"
[workload]
kind = "lin-kv"
rate = 60
clients = 3
[[step]]
at = "1s"
fault = "partition"
from = ["r1"]
to = ["r0", "r2"]
[[step]]
at = "4s"
fault = "heal"
"""


def test_unsafe_lin_kv_under_a_partition_is_nonlinearizable(cli: CLI, tmp_path: Path) -> None:
    path = scenario(tmp_path, "unsafe-kv", program("linkv_unsafe.py"),
                    PARTITION + '[expect]\nfound = ["nonlinearizable"]\n')  # fmt: skip
    summary = run_scenario(cli, path)
    assert summary["verdict"] == "pass", summary["expectations"]
    assert summary["protocol"] == "external"
    stale = [v for v in summary["violations"] if v["kind"] == "nonlinearizable"]
    assert stale and "which no linearization allows" in stale[0]["detail"]


def test_single_leader_lin_kv_stays_linearizable(cli: CLI, tmp_path: Path) -> None:
    path = scenario(tmp_path, "leader-kv", program("linkv_leader.py"),
                    PARTITION + "[expect]\nsafe = true\nmin_ok = 100\n")  # fmt: skip
    summary = run_scenario(cli, path)
    assert summary["verdict"] == "pass", (summary["expectations"], summary["violations"])
    # Requests cut off from the leader were never answered: info, not a wrong answer.
    assert summary["ops"]["info"] > 0


def test_lin_kv_service_is_linearizable_and_lww_kv_is_not(cli: CLI, tmp_path: Path) -> None:
    body = 'duration = "4s"\n[workload]\nkind = "lin-kv"\nrate = 80\nclients = 3\n'
    safe = run_scenario(cli, scenario(tmp_path, "via-lin", program("kv_proxy.py lin-kv"),
                                      body + "[expect]\nsafe = true\nmin_ok = 150\n"))  # fmt: skip
    assert safe["verdict"] == "pass", (safe["expectations"], safe["violations"])
    lww = run_scenario(cli, scenario(tmp_path, "via-lww", program("kv_proxy.py lww-kv"),
                                     body + '[expect]\nfound = ["nonlinearizable"]\n'))  # fmt: skip
    assert lww["verdict"] == "pass", lww["expectations"]


BROADCAST = """duration = "5s"
[workload]
kind = "broadcast"
rate = 40
clients = 2
settle = 1.5
"""


def test_broadcast_converges_after_partition_and_heal(cli: CLI, tmp_path: Path) -> None:
    body = BROADCAST + """[[step]]
at = "1s"
fault = "partition"
from = ["r2"]
to = ["r0", "r1"]
[[step]]
at = "3s"
fault = "heal"
[expect]
safe = true
"""
    path = scenario(tmp_path, "gossip", program("gossip.py"), body)
    summary = run_scenario(cli, path)
    assert summary["verdict"] == "pass", summary["violations"]
    stats = summary["workload_stats"]["broadcast"]
    assert stats["final_reads"] == ["r0", "r1", "r2"] and stats["lost"] == 0
    assert stats["acknowledged"] > 50
    assert stats["msgs_per_op"] > 0  # gossip crossed the router
    assert stats["stable_latency_ms"]["max"] >= stats["stable_latency_ms"]["median"] > 0


def test_restarted_in_memory_node_shows_what_it_lost(cli: CLI, tmp_path: Path) -> None:
    body = BROADCAST.replace('kind = "broadcast"', 'kind = "broadcast"') + """[[step]]
at = "1.5s"
fault = "kill"
node = "r1"
[[step]]
at = "2s"
fault = "restart"
node = "r1"
[expect]
found = ["lost-message"]
"""
    path = scenario(tmp_path, "amnesia", program("gossip.py"), body)
    summary = run_scenario(cli, path)
    assert summary["verdict"] == "pass", summary["expectations"]
    lost = [v for v in summary["violations"] if v["kind"] == "lost-message"]
    assert [v["nodes"] for v in lost] == [["r1"]]  # only the node that forgot
    assert "restarted 1x" in lost[0]["detail"]


def test_program_that_exits_at_start_fails_the_lab_clearly(cli: CLI, tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import sys\nsys.stderr.write('KeyError: peers\\n')\nsys.exit(1)\n")
    result = cli.run("up", "-d", "--node-cmd", f"{PY} {bad}", check=False)
    assert result.returncode == 3
    # Whichever replica's program died first is named (all of them do).
    assert re.search(r"error: r\d exited during start .*: error: r\d \(n\d, ", result.stderr)
    assert "exited with code 1 before answering init" in result.stderr
    assert "KeyError: peers" in result.stderr
    assert not (cli.lab_dir / "state.json").exists()
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(bad) in " ".join(
        p.info["cmdline"] or [])]  # fmt: skip


def test_program_that_never_answers_init(cli: CLI, tmp_path: Path) -> None:
    mute = tmp_path / "mute.py"
    mute.write_text("import sys, time\nsys.stderr.write('thinking\\n')\ntime.sleep(60)\n")
    path = scenario(tmp_path, "mute", f"{PY} {mute}", 'duration = "2s"\n')
    path.write_text(path.read_text().replace("[node]\n", "[node]\ninit_timeout = 1\n"))
    result = cli.run("scenario", "run", str(path), check=False, timeout=60)
    assert result.returncode == 3
    assert "did not answer init within 1s" in result.stderr and "thinking" in result.stderr
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(mute) in " ".join(
        p.info["cmdline"] or [])]  # fmt: skip


def test_misbehaving_program_is_counted_not_fatal(cli: CLI) -> None:
    cli.up("--node-cmd", program("misbehave.py"), "-n", "2")
    try:
        deadline = time.monotonic() + 10
        while True:
            nodes = cli.status()["nodes"]
            if all(n.get("problems", {}).get("unknown_dest") for n in nodes):
                break
            assert time.monotonic() < deadline, nodes
            time.sleep(0.1)
        problems = nodes[0]["problems"]
        assert problems["bad_line"] == 1 and problems["unknown_dest"] == 1
        assert "'n9', a node that does not exist" in nodes[0]["last_error"]
        # A flood of 200,000 lines: the excess over the rate limit is dropped and counted.
        cli.run("client", "send", "r0", '{"type": "echo", "echo": "flood"}', "--timeout",
                "3s", check=False)  # fmt: skip
        deadline = time.monotonic() + 20
        while not cli.status()["nodes"][0]["problems"].get("flood"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        out = cli.run("client", "send", "r0", '{"type": "echo", "echo": "still here"}',
                      "--timeout", "5s")  # fmt: skip
        assert "still here" in out.stdout
        events = (Path(cli.status()["run_dir"]) / "events.jsonl").read_text()
        errors = [json.loads(ln) for ln in events.splitlines() if '"external.error"' in ln]
        assert {e["problem"] for e in errors} >= {"bad_line", "unknown_dest", "flood"}
        assert errors[0]["stderr"] == ["about to misbehave"]
        assert all(n["state"] == "running" for n in cli.status()["nodes"])
    finally:
        cli.run("down")


def test_a_message_a_program_sends_itself_comes_back(cli: CLI) -> None:
    # Maelstrom delivers it; Gossip Glomers solutions that loop over node_ids rely on it.
    cli.up("--node-cmd", program("self_rpc.py"), "-n", "2")
    try:
        out = user_cli(cli, "client", "send", "r1", '{"type": "ask"}', "--timeout", "5s")
        assert out.returncode == 0, out.stdout + out.stderr
        assert '"answer": 42' in out.stdout and '"via": "n1"' in out.stdout
        # The adapter reports its counters every 0.1 s: the reply can come first.
        node = wait_until(
            lambda: (n := cli.status()["nodes"][1])["counters"].get("to_self") == 2 and n
        )
        assert node["errors"] == 0, node  # to_self: the inner request and its inner_ok
    finally:
        cli.run("down")


def test_role_reports_feed_status_and_the_split_brain_checker(cli: CLI) -> None:
    cli.up("--node-cmd", program("all_leaders.py"), "-n", "2")
    try:
        deadline = time.monotonic() + 10
        while True:
            doc = cli.status()
            if doc["violations"]:
                break
            assert time.monotonic() < deadline, doc["nodes"]
            time.sleep(0.1)
        assert [n["role"] for n in doc["nodes"]] == ["leader", "leader"]
        assert sorted(doc["leaders"]) == ["r0", "r1"]
        v = doc["violations"][0]
        assert v["kind"] == "split-brain" and "two leaders in term 1: r0, r1" in v["detail"]
    finally:
        cli.run("down")


def test_pause_stops_the_program_and_restart_runs_a_fresh_one(cli: CLI) -> None:
    cli.up("--node-cmd", program("clock.py"), "-n", "2")
    try:
        node = cli.status()["nodes"][0]
        prog = psutil.Process(node["program_pid"])
        cli.run("fault", "pause", "r0")
        assert prog.status() == psutil.STATUS_STOPPED
        assert cli.run("client", "send", "r0", '{"type": "time"}', "--timeout", "300ms",
                       check=False).returncode == 1  # fmt: skip
        cli.run("fault", "resume", "r0")
        cli.run("client", "send", "r0", '{"type": "time"}')
        cli.run("fault", "restart", "r0")
        node = cli.status()["nodes"][0]
        assert node["starts"] == 2 and node["program_pid"] != prog.pid
        # Dead: gone, or a zombie until whoever inherited it (pid 1) reaps it.
        assert not prog.is_running() or prog.status() == psutil.STATUS_ZOMBIE
        cli.run("client", "send", "r0", '{"type": "time"}')
    finally:
        cli.run("down")


def test_clock_fault_reaches_the_program_through_libfaketime(cli: CLI) -> None:
    cli.up("--node-cmd", program("clock.py"), "-n", "1")
    try:
        node = cli.status()["nodes"][0]
        if node["clock_faults"] != "libfaketime":  # no libfaketime: the fault says why
            result = cli.run("fault", "clock", "r0", "--offset", "100s", check=False)
            assert result.returncode == 2 and "libfaketime" in result.stderr
            return
        cli.run("fault", "clock", "r0", "--offset", "100s")
        deadline = time.monotonic() + 10
        while True:  # libfaketime re-reads its spec within a second
            out = cli.json("client", "send", "r0", '{"type": "time"}')
            skew = out["reply"]["time"] - time.time()
            if skew > 90:
                break
            assert time.monotonic() < deadline, skew
            time.sleep(0.2)
        assert skew < 110
        result = cli.run("fault", "disk", "r0", "--fsync", "50ms", check=False)
        assert result.returncode == 2 and "do not apply" in result.stderr
    finally:
        cli.run("down")
