"""A crafted history the linearizability search cannot finish (issue 14, case 8): 36
operations on one key make it say "unknown for key (budget)" in bounded time and memory,
offline (`labctl check`) and live (the supervisor's checkers, and `labctl down` ending the
lab without having to kill the supervisor)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from labctl.api import Lab
from labctl.checkers import CheckerConfig, CheckerSet, check_run_dir
from labctl.checkers.history import pair_history
from labctl.checkers.linearizability import Budget, check_key
from tests.conftest import CLI

PUTS = 34


def crafted(key: str = "k", t0: float = 0.0) -> list[dict[str, Any]]:
    """34 overlapping puts, then a read of v0 and a later read of v1: no order explains
    both reads, and proving it means trying every subset of the puts (2^34 states)."""
    recs: list[dict[str, Any]] = []

    def rec(kind: str, t: float, proc: str, rid: str, op: str, **kw: Any) -> None:
        recs.append({"type": kind, "t": t0 + t, "process": proc, "request_id": rid, "op": op,
                     "key": key, **kw})  # fmt: skip

    for i in range(PUTS):
        rec("invoke", i * 1e-4, f"c{i}", f"{key}-p{i}", "put", value=f"v{i}")
    for i in range(PUTS):
        rec("ok", 1.0 + i * 1e-4, f"c{i}", f"{key}-p{i}", "put")
    rec("invoke", 2.0, "r", f"{key}-g0", "get")
    rec("ok", 2.1, "r", f"{key}-g0", "get", value="v0")
    rec("invoke", 3.0, "r", f"{key}-g1", "get")
    rec("ok", 3.1, "r", f"{key}-g1", "get", value="v1")
    return recs


def test_the_crafted_history_runs_out_of_time_not_forever() -> None:
    ops = pair_history(crafted())
    assert len(ops) == 36
    t0 = time.monotonic()
    result = check_key("k", ops, Budget(seconds=0.5))
    assert result.status == "unknown" and result.reason == "time"
    assert result.describe_unknown() == "unknown for key 'k' (budget: time)"
    assert time.monotonic() - t0 < 15  # 0.5 s asked; slack for a loaded machine


def test_the_crafted_history_runs_out_of_memory_before_it_grows() -> None:
    result = check_key("k", pair_history(crafted()), Budget(memory_mb=2))
    assert result.status == "unknown" and result.reason == "memory"


def test_a_small_budget_still_finds_an_easy_violation_next_to_a_hard_key() -> None:
    stale = [
        {"type": "invoke", "t": 0.0, "process": "a", "request_id": "w", "op": "put",
         "key": "easy", "value": "1"},
        {"type": "ok", "t": 0.1, "process": "a", "request_id": "w", "op": "put", "key": "easy"},
        {"type": "invoke", "t": 0.2, "process": "a", "request_id": "r", "op": "get", "key": "easy"},
        {"type": "ok", "t": 0.3, "process": "a", "request_id": "r", "op": "get", "key": "easy",
         "value": None},
    ]  # fmt: skip
    checkers = CheckerSet(CheckerConfig(lin_seconds=0.3))
    for r in sorted(crafted() + stale, key=lambda r: r["t"]):
        checkers.on_history(r)
    found = [v for v in checkers.finish() if v.kind == "nonlinearizable"]
    assert len(found) == 1 and "'easy'" in found[0].detail  # (lost-write: nothing applied)
    assert checkers.summary()["linearizability"]["unknown"] == {"k": "time"}


def _run_dir(path: Path, history: list[dict[str, Any]]) -> Path:
    path.mkdir()
    (path / "events.jsonl").write_text("")
    (path / "lab.json").write_text(json.dumps({"config": {"protocol": "naive"}}))
    (path / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
    return path


def test_labctl_check_says_unknown_for_the_key(cli: CLI, tmp_path: Path) -> None:
    run = _run_dir(tmp_path / "run", crafted())
    t0 = time.monotonic()
    # (exit 1: the lost-write checker sees acknowledged puts no replica applied)
    result = cli.run("check", str(run), "--lin-seconds", "0.5", check=False)
    assert time.monotonic() - t0 < 30  # a process start plus 0.5 s, on a busy machine
    assert "linearizability unknown for key 'k' (budget: time)" in result.stdout
    assert "nonlinearizable" not in result.stdout
    doc = check_run_dir(run, overrides={"lin_seconds": 0.5})
    assert doc["linearizability"]["unknown"] == {"k": "time"}
    bad = cli.run("check", str(run), "--lin-seconds", "nan", check=False)
    assert bad.returncode == 2 and "lin_seconds must be a positive finite number" in bad.stderr


def test_fed_live_the_lab_still_goes_down_cleanly_with_the_key_unknown(cli: CLI) -> None:
    cli.up("-n", "3", "-p", "naive")
    lab = Lab.find(cli.lab_dir)
    now = time.time()
    for r in crafted(t0=now):
        assert lab.call("history", record=r)["ok"]
    # The live checker searches it (0.5 s at most a pass) and puts it aside as hard: the
    # supervisor goes on answering.
    for _ in range(5):
        assert cli.json("status")["processes"]
    t0 = time.monotonic()
    result = cli.run("down")
    took = time.monotonic() - t0
    assert "linearizability unknown for key 'k' (budget: time)" in result.stderr, result.stderr
    run_dir = Path(result.stderr.split("run record in ")[1].split()[0])
    summary = json.loads((run_dir / "summary.json").read_text())  # absent if it was killed
    assert summary["checkers"]["linearizability"]["unknown"] == {"k": "time"}
    assert took < 10, took  # `labctl down` kills the supervisor at 10 s
