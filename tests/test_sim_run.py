"""`labctl sim run`: the built-in scenarios in virtual time give `scenario run`'s verdicts, and
the run record is one `labctl check` reads like any other."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest

from faults import trace as tr
from labctl.scenario.format import ScenarioError
from labctl.scenario.library import find, names, resolve
from tests.conftest import CLI

PROTOCOLS = ("naive", "raft", "epaxos", "pbft")


def _applicable() -> list[tuple[str, str]]:
    """Every (built-in, protocol) pair the scenario applies to: those whose file validates
    for the protocol (pbft-equivocation's byzantine steps need pbft)."""
    pairs = []
    for name in names():
        for p in PROTOCOLS:
            try:
                resolve(name, p)
            except ScenarioError:
                continue
            pairs.append((name, p))
    return pairs


# Quick ones in the default suite, all of them in the slow one.
QUICK = {("split-brain", "naive"), ("split-brain", "raft"), ("zombie-leader", "naive"),
         ("clock-skew-lease", "raft")}  # fmt: skip


@pytest.mark.parametrize("name,protocol", sorted(QUICK))
def test_builtin_verdicts_quick(name: str, protocol: str, tmp_path: Path) -> None:
    _expect_pass(name, protocol, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name,protocol", [p for p in _applicable() if p not in QUICK])
def test_builtin_verdicts_all(name: str, protocol: str, tmp_path: Path) -> None:
    _expect_pass(name, protocol, tmp_path)


def _expect_pass(name: str, protocol: str, tmp_path: Path) -> None:
    from labctl import simrun

    code, summary = simrun.execute(resolve(name, protocol), str(tmp_path), talk=False)
    failed = [e for e in summary["expectations"] if not e["met"]]
    assert code == 0 and summary["verdict"] == "pass", (failed, summary["violations"][:3])


def test_the_record_is_a_run_record_check_agrees(cli: CLI) -> None:
    """naive split-brain in the simulator: exit 0 (the expected split brain was found), a
    run directory marked simulated, and `labctl check` finds the same violations."""
    proc = cli.run("sim", "run", "split-brain", "--json")
    summary = json.loads(proc.stdout)
    assert summary["verdict"] == "pass" and summary["simulated"] is True
    kinds = {v["kind"] for v in summary["violations"]}
    assert {"split-brain", "divergence"} <= kinds
    run = Path(summary["run_dir"])
    lab = json.loads((run / "lab.json").read_text())
    assert lab["config"]["simulated"] is True
    assert (run / "events.jsonl").stat().st_size > 0 and (run / "history.jsonl").exists()
    assert json.loads((run / "summary.json").read_text())["verdict"] == "pass"
    checked = cli.json("check", str(run), check=False)
    assert not checked["safe"]
    assert {v["kind"] for v in checked["violations"]} == kinds
    # The same file expecting naive to be safe is not met: exit 1, as `scenario run`.
    text = find("split-brain").read_text().replace(
        '[expect.naive]\nfound = ["split-brain", "divergence"]', "[expect.naive]\nsafe = true"
    )
    (cli.lab_dir / "safe.toml").write_text(text)
    assert cli.run("sim", "run", str(cli.lab_dir / "safe.toml"), check=False).returncode == 1


def test_raft_under_the_same_cut_is_safe_and_check_agrees(cli: CLI) -> None:
    """Also: the run writes the message trace the lab's router writes, so its report's
    space-time diagram draws the messages, the ones the partition dropped among them."""
    summary = cli.json("sim", "run", "split-brain", "-p", "raft")
    assert summary["verdict"] == "pass" and summary["violations"] == []
    assert summary["ops"]["ok"] >= 100
    assert cli.run("check", summary["run_dir"]).returncode == 0
    run = Path(summary["run_dir"])
    trace = tr.read_trace(tr.trace_path(run))
    assert not trace.torn and trace.kept == len(trace.messages) > 1000
    peers = [m for m in trace.messages if m.src.startswith("r") and m.dst.startswith("r")]
    # Decoded from the wire bytes' head, as for a real run: the type and the term.
    assert {"AppendEntries", "RequestVote"} <= {m.type for m in peers}
    assert all(isinstance(m.fields.get("term"), int) for m in peers if m.type == "RequestVote")
    # The partition (r0 | r1,r2 from 1.5 s to 5 s) drops what crosses it, only then.
    cut = [m for m in peers if m.fate == "dropped"]
    assert cut and all(1.5 <= m.t_in <= 5.0 and "r0" in (m.src, m.dst) for m in cut)
    delivered = [m for m in peers if m.fate == "delivered"]
    assert delivered and all(m.t_out is not None and m.t_out > m.t_in for m in delivered)
    html = Path(summary["report"]).read_text()
    assert "frames traced" in html and "has no message trace" not in html
    assert re.search(r"never arrived \([^)]*dropped [1-9]", html), "no dropped arrows drawn"
    assert 'alt="space-time diagram" src="data:image/png;base64,' in html
    _status_as_replicas_report_it(run)


def _status_as_replicas_report_it(run: Path) -> None:
    """The replicas' node.status telemetry, at a replica's pace (at most one per node per
    STATUS_INTERVAL), is what the report's commit/applied panel draws: r0, cut off from
    1.5 s to 5 s, commits nothing meanwhile and catches up after the heal."""
    from labctl.report.data import load_run
    from nodes.status_publish import STATUS_INTERVAL

    lines = load_run(run).nodes
    for r in ("r0", "r1", "r2"):
        times = [t for t, _, _ in lines[r].status]
        assert len(times) > 20, r
        assert min(b - a for a, b in itertools.pairwise(times)) >= STATUS_INTERVAL - 1e-9, r

    def commit_at(node: str, t: float) -> int:  # what the node's latest status said then
        return [commit for at, commit, _ in lines[node].status if at <= t][-1]

    cut = commit_at("r0", 2.0)
    assert commit_at("r0", 4.9) == cut
    assert lines["r0"].status[-1][1] > cut and lines["r0"].status[-1][2] > cut  # caught up
    others = commit_at("r1", 4.9)
    assert others > cut + 20  # the majority side went on committing


def test_bad_input_exits_2_with_one_line(cli: CLI, tmp_path: Path) -> None:
    for args in (["sim", "run", "no-such-scenario"], ["sim", "run", "split-brain", "-p", "nope"],
                 ["sim", "explore", "-p", "nope"], ["sim", "explore", "--nodes", "3,x"],
                 ["sim", "explore", "--for", "soon"], ["sim", "explore", "--mutate", "bogus"],
                 ["sim", "run", "split-brain", "--seed", "-1"]):  # fmt: skip
        proc = cli.run(*args, check=False)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "b"\nprotocol = "raft"\n[[step]]\nat = "1s"\nfault = "kill"\n')
    proc = cli.run("sim", "run", str(broken), check=False)
    assert proc.returncode == 2 and "step[0]" in proc.stderr
