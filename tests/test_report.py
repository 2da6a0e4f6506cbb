"""`labctl report`: the page and its figures from a run record, through the real CLI.

The run record is written by tests/report_helpers.py with the lab's own writers; the
browser test (tests/test_report_browser.py, slow) does the same for real scenario runs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from faults import trace as tr
from labctl.cli.report import find_run
from labctl.report.data import lease_overlaps, load_run
from labctl.report.spacetime import choose_window
from tests.conftest import CLI
from tests.report_helpers import T0, write_run

PNG = b"\x89PNG\r\n\x1a\n"
FIGURES = ("rate", "latency", "timelines", "spacetime")


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return write_run(tmp_path / "runs" / "20260101-000000-synthetic-naive")


def test_report_writes_one_self_contained_page_and_the_pngs(cli: CLI, run_dir: Path) -> None:
    result = cli.run("report", str(run_dir))
    page = Path(result.stdout.strip())
    assert page == run_dir / "report.html"
    html = page.read_text()
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', html)
    assert len(images) == 4, images
    for name in FIGURES:
        assert (run_dir / f"report-{name}.png").read_bytes().startswith(PNG)
    # Nothing to fetch at view time: no scripts, stylesheets, fonts or remote images.
    assert not re.search(r"<script|<link|@import|url\(|src=\"http", html)
    for words in (
        "PASS", "partition r0 &lt;-&gt; r1,r2", "split-brain", "two leaders in term 1",
        "pause r2 for 1.5s", "kill r2", "clock r0 offset=+0.007s", "Space-time",
    ):  # fmt: skip
        assert words in html, words
    assert 'id="spacetime"' in html and 'id="timelines"' in html


def test_latest_and_a_run_name_resolve_under_the_lab_dir(cli: CLI, tmp_path: Path) -> None:
    older = write_run(cli.lab_dir / "runs" / "20260101-000000-a-naive", seconds=3, ops=50,
                      frames=300)  # fmt: skip
    newer = write_run(cli.lab_dir / "runs" / "20260102-000000-b-naive", seconds=3, ops=50,
                      frames=300)  # fmt: skip
    assert Path(cli.run("report", "latest").stdout.strip()) == newer / "report.html"
    assert find_run(older.name, str(cli.lab_dir)) == older.resolve()
    assert find_run(str(older), None) == older.resolve()


def test_bad_input_is_one_line_and_exit_2(cli: CLI, run_dir: Path, tmp_path: Path) -> None:
    for args, words in (
        (["latest"], "no runs in"),
        ([str(tmp_path)], "not a run directory"),
        ([str(run_dir), "--window", "3:1"], "the start must come before the end"),
        ([str(run_dir), "--window", "soon"], "--window wants T0:T1"),
        ([str(run_dir), "--window", "1:forever"], "--window"),
    ):
        result = cli.run("report", *args, check=False)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], (args, lines)


def test_a_window_and_a_run_without_trace(cli: CLI, run_dir: Path) -> None:
    (run_dir / "trace.bin").unlink()  # a run recorded with trace_cap = 0
    cli.run("report", str(run_dir), "--window", "1.5:2.5s")
    html = (run_dir / "report.html").read_text()
    assert "1.50-2.50 s, the window asked for" in html
    assert "has no message trace" in html


def test_a_damaged_trace_costs_the_arrows_not_the_page(run_dir: Path) -> None:
    from labctl.report import write_report

    (run_dir / "trace.bin").write_bytes(b"\x00\x00\x00\x05junk!")
    html = write_report(run_dir).read_text()
    assert "could not be read" in html and html.count("data:image/png") == 4


def test_the_run_record_folds_into_faults_timelines_and_violations(run_dir: Path) -> None:
    run = load_run(run_dir)
    assert run.verdict == "pass" and run.params["nodes"] == 3 and run.t0 == T0
    bands = {b.label: (round(b.start - T0, 2), round(b.end - T0, 2), b.healed) for b in run.faults}
    assert bands == {
        "clock r0 offset=+0.007s drift=+0": (1.0, round(run.t_end - T0, 2), False),  # in force
        "partition r0 <-> r1,r2": (2.0, 6.0, True),
        "pause r2 for 1.5s": (7.0, 8.5, True),
        "kill r2": (8.5, 9.0, True),  # healed by its restart
    }
    assert [(round(s - T0, 1), round(e - T0, 1), w) for s, e, w in run.nodes["r2"].down] == [
        (7.0, 8.5, "paused"), (8.5, 9.0, "killed")
    ]  # fmt: skip
    r1 = run.nodes["r1"]
    assert [r for _, _, r, _ in r1.roles] == ["follower", "leader"]
    assert any("self-promoted" in label for _, _, label in r1.marks)
    assert run.nodes["r0"].leases and not lease_overlaps(run.nodes)
    assert [v.kind for v in run.violations] == ["split-brain"]
    assert sum(len(v) for v in run.ops.values()) == 600 and run.invoked == 600
    window = choose_window(run)
    assert window.t0 < T0 + 2.0 < T0 + 2.3 < window.t1  # the cut and the promotion
    trace = tr.read_trace(tr.trace_path(run_dir), window.t0, window.t1)
    cut = [m for m in trace.messages if m.fate == "dropped"]
    assert (
        cut and {m.type for m in cut} >= {"Heartbeat"} and all("r0" in (m.src, m.dst) for m in cut)
    )


def test_an_election_won_ms_after_the_candidacy_is_marked_as_a_new_leader(tmp_path: Path) -> None:
    """Role changes a few ms apart fold into one label, but the mark is the weightiest:
    a candidacy won 2 ms later is a leader's star at the election's time (an under-load
    run's raft split brain lost its new leader from the diagram this way)."""
    import json

    root = tmp_path / "run"
    root.mkdir()
    events = [
        {"t": 0.0, "src": "supervisor", "kind": "lab.ready", "nodes": ["r0", "r1", "r2"]},
        {"t": 1.0, "src": "r1", "kind": "became_candidate", "term": 1, "pre_vote": True},
        {"t": 1.001, "src": "r1", "kind": "became_candidate", "term": 2},
        {"t": 1.002, "src": "r1", "kind": "became_leader", "term": 2, "how": "elected"},
        {"t": 1.5, "src": "r0", "kind": "stepped_down", "term": 1, "reason": "check_quorum"},
        {"t": 1.501, "src": "r0", "kind": "became_follower", "term": 1, "leader": None},
        {"t": 2.0, "src": "supervisor", "kind": "lab.stopped"},
    ]
    (root / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    config = {"protocol": "raft", "nodes": 3, "replicas": ["r0", "r1", "r2"]}
    (root / "lab.json").write_text(json.dumps({"config": config}))
    run = load_run(root)
    assert run.nodes["r1"].marks == [(1.002, "became_leader", "candidate, term 2; leader")]
    assert run.nodes["r0"].marks == [(1.5, "stepped_down",
                                      "stepped down, term 1 (check_quorum); follower")]  # fmt: skip
