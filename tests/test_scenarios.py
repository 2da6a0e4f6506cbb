"""`labctl scenario run` end to end: the verdict, the --json contract, `labctl check`
agreeing offline, broken files refused before anything starts, nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from labctl.scenario.library import builtin_dir
from tests.conftest import CLI

CONTRACT_KEYS = {"scenario", "protocol", "nodes", "seed", "run_dir", "verdict", "expectations",
                 "violations", "ops", "latency_ms", "elections"}  # fmt: skip


def lab_processes_under(root: Path) -> list[psutil.Process]:
    """Replica/router/client processes whose command line points into `root`."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if str(root) in cmd and ("nodes." in cmd or "labctl.supervisor" in cmd):
            found.append(p)
    return found


def short_split_brain(tmp_path: Path, expect_naive: str) -> Path:
    text = (builtin_dir() / "split-brain.toml").read_text()
    text = text.replace('duration = "8s"', 'duration = "4s"').replace('at = "5s"', 'at = "3s"')
    text = text.replace('found = ["split-brain", "divergence"]', expect_naive, 1)
    path = tmp_path / "sb.toml"
    path.write_text(text)
    return path


def test_split_brain_naive_passes_and_check_agrees(cli: CLI, tmp_path: Path) -> None:
    path = short_split_brain(tmp_path, 'found = ["split-brain", "divergence"]')
    result = cli.run("scenario", "run", str(path), "--json", check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary.keys() >= CONTRACT_KEYS
    assert summary["verdict"] == "pass" and summary["protocol"] == "naive"
    kinds = {v["kind"] for v in summary["violations"]}
    assert {"split-brain", "divergence"} <= kinds
    sb = next(v for v in summary["violations"] if v["kind"] == "split-brain")
    assert len(sb["nodes"]) >= 2 and sb["t"] > 0 and "term 1" in sb["detail"]
    assert summary["ops"]["ok"] >= 100
    assert "VIOLATION split-brain" in result.stderr  # reported live, not only at the end
    run_dir = Path(summary["run_dir"])
    assert json.loads((run_dir / "summary.json").read_text()) == summary

    offline = cli.json("check", str(run_dir), check=False)
    online = sorted((v["kind"], v["t"], tuple(v["nodes"])) for v in summary["violations"])
    assert sorted((v["kind"], v["t"], tuple(v["nodes"])) for v in offline["violations"]) == online
    assert not lab_processes_under(cli.lab_dir)


def test_the_same_file_expecting_naive_safe_exits_1(cli: CLI, tmp_path: Path) -> None:
    path = short_split_brain(tmp_path, "safe = true")
    result = cli.run("scenario", "run", str(path), "--json", check=False, timeout=60)
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    assert summary["verdict"] == "fail"
    assert {"expect": "safe", "met": False} in summary["expectations"]


@pytest.mark.parametrize(
    ("patch", "key"),
    [
        (("seed = 42", "seed = 42\nbogus = 1"), "bogus: unknown key"),
        (('duration = "8s"', 'duration = "8 parsecs"'), "duration: not a duration"),
        (('to = ["followers"]', 'to = ["r7"]'), "unknown node 'r7'"),
        (('at = "5s"', 'at = "9s"'), "step[1].at: '9s' is after the end"),
        (('fault = "heal"', 'fault = "meteor"'), "unknown fault 'meteor'"),
        (("rate = 60", "rate = -3"), "workload.rate"),
        (("[expect]", "[expect]\nfond = 1"), "expect.fond: unknown key"),
        (("fencing = false", "fencing = 3"), "broker.fencing"),
        (('name = "split-brain"', 'name = ""'), "name: required"),
    ],
)
def test_broken_scenarios_exit_2_naming_file_and_key(
    cli: CLI, tmp_path: Path, patch: tuple[str, str], key: str
) -> None:
    text = (builtin_dir() / "split-brain.toml").read_text()
    assert patch[0] in text
    path = tmp_path / "broken.toml"
    path.write_text(text.replace(patch[0], patch[1], 1))
    result = cli.run("scenario", "run", str(path), check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and key in lines[0], lines
    assert not (cli.lab_dir / "runs").exists()  # nothing started


def test_not_toml_and_unknown_builtin(cli: CLI, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [unclosed")
    result = cli.run("scenario", "run", str(bad), check=False)
    assert result.returncode == 2 and "not valid TOML" in result.stderr
    result = cli.run("scenario", "run", "no-such-incident", check=False)
    assert result.returncode == 2 and "no such scenario" in result.stderr


def test_builtins_list_show_and_validate(cli: CLI) -> None:
    rows = cli.json("scenario", "list")
    names = {r["name"] for r in rows}
    assert {"split-brain", "zombie-leader", "zombie-leader-fenced", "gc-pause", "fsync-stall",
            "clock-skew-lease", "lease-vs-quorum-reads", "minority-partition"} <= names  # fmt: skip
    shown = cli.run("scenario", "show", "gc-pause").stdout
    assert 'fault = "pause"' in shown and 'for = "14s"' in shown


def test_a_lab_that_dies_mid_run_exits_3_with_a_record(cli: CLI, tmp_path: Path) -> None:
    path = short_split_brain(tmp_path, 'found = ["split-brain"]')
    env = dict(os.environ, LABCTL_DIR=str(cli.lab_dir))
    proc = subprocess.Popen(
        [sys.executable, "-m", "labctl.cli.main", "scenario", "run", str(path), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    killed: list[int] = []

    def kill_supervisor() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not killed:
            for p in lab_processes_under(cli.lab_dir):
                if "labctl.supervisor" in " ".join(p.cmdline()):
                    time.sleep(1.5)  # let the run get going, then pull the plug
                    p.send_signal(signal.SIGKILL)
                    killed.append(p.pid)
                    return
            time.sleep(0.05)

    t = threading.Thread(target=kill_supervisor)
    t.start()
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        t.join()
        if proc.poll() is None:
            proc.kill()
    assert killed
    assert proc.returncode == 3, err
    summary = json.loads(out)
    assert summary["verdict"] == "error" and summary["error"]
    run_dir = Path(summary["run_dir"])
    for name in ("lab.json", "events.jsonl", "history.jsonl", "summary.json"):
        assert (run_dir / name).exists(), name
    assert not lab_processes_under(cli.lab_dir)


def test_a_protocol_without_an_expectation_is_held_to_safe() -> None:
    """Issue 21: a scenario that names no expectation for a protocol judged it on min_ok
    alone, and a run with a zombie write passed."""
    from labctl.scenario.format import parse
    from labctl.scenario.runner import evaluate

    raw = {"name": "s", "protocol": "raft", "expect": {"min_ok": 1, "naive": {"found": []}}}
    sc = parse(raw, "s.toml")
    assert sc.expectations("raft") == {"min_ok": 1, "safe": True}
    zombie = [{"kind": "zombie-write", "t": 1.0, "nodes": ["r0"], "detail": "late"}]
    ops = {"ok": 5, "fail": 0, "info": 0, "invoked": 5}
    results = evaluate(sc.expectations("raft"), zombie, ops)
    assert {"expect": "safe", "met": False} in results
    # naive declares itself unsafe by design: no entry, no safety judgement.
    assert "safe" not in parse({**raw, "expect": {"min_ok": 1}}, "s.toml").expectations("naive")
    # An entry that speaks of safety is the entry's word.
    raw["expect"]["raft"] = {"absent": ["split-brain"]}
    assert parse(raw, "s.toml").expectations("raft") == {"min_ok": 1, "absent": ["split-brain"]}


def test_check_judges_a_scenario_run_as_it_was_judged_live(tmp_path: Path) -> None:
    """`labctl check RUN` on a run that came from a scenario: the scenario's expectations,
    the same verdict and exit code as live, violations summed up per kind."""

    def labctl(*args: str) -> subprocess.CompletedProcess:
        env = dict(os.environ, LABCTL_DIR=str(tmp_path / "lab"))
        return subprocess.run([sys.executable, "-m", "labctl.cli.main", *args],
                              capture_output=True, text=True, env=env, timeout=120)  # fmt: skip

    for expect, code in (('[expect.naive]\nfound = ["split-brain"]\n', 0),
                         ('[expect.naive]\nabsent = ["split-brain"]\n', 1)):  # fmt: skip
        path = tmp_path / "s.toml"
        path.write_text(
            'name = "s"\nprotocol = "naive"\nnodes = 3\nduration = "6s"\n'
            '[workload]\nkind = "kv"\nrate = 50\nclients = 2\n'
            '[[step]]\nat = "1s"\nfault = "partition"\nfrom = ["r0"]\nto = ["r1", "r2"]\n' + expect
        )
        live = labctl("sim", "run", str(path), "--json")
        assert live.returncode == code, live.stderr
        run_dir = json.loads(live.stdout)["run_dir"]
        again = labctl("check", run_dir, "--json")
        assert again.returncode == code, again.stderr
        doc = json.loads(again.stdout)
        assert doc["scenario"]["verdict"] == json.loads(live.stdout)["verdict"]
        first = doc["by_kind"]["split-brain"]
        assert first["count"] >= 1 and first["first"]["kind"] == "split-brain"
        text = labctl("check", run_dir).stdout.splitlines()
        assert sum(line.startswith("split-brain") for line in text) == 1  # one line per kind
