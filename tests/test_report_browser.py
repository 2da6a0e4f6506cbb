"""The report as a reader gets it: real scenario runs, then headless Chromium with no
network loads report.html, and the page holds every figure.

Slow (two scenario runs, a browser): `pytest -m slow`. Needs Debian's `chromium`
(.ci/run installs it); the network is cut with a network namespace when we may make one
(`unshare -n`, root as in CI), otherwise every host resolves to nothing and the proxy is a
closed port.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from faults import trace as tr
from labctl.report.data import load_run
from labctl.report.spacetime import choose_window, violation_window
from tests.conftest import CLI
from tests.test_scenarios import short_split_brain

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def offline(argv: list[str]) -> list[str]:
    if os.geteuid() == 0 and shutil.which("unshare"):
        return ["unshare", "-n", *argv]
    return [*argv, "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND"]


def chromium(page: Path, *args: str) -> subprocess.CompletedProcess:
    assert CHROMIUM, "Debian's chromium is needed (apt-get install chromium)"
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            *args, page.as_uri()]  # fmt: skip
    return subprocess.run(offline(argv), capture_output=True, timeout=120)


def scenario_report(cli: CLI, path: Path, *args: str) -> Path:
    result = cli.run("scenario", "run", str(path), *args, timeout=120)
    found = re.findall(r"^report: (.+report\.html)$", result.stderr, re.M)
    assert found, result.stderr
    return Path(found[0])


def test_split_brain_reports_load_offline_with_every_figure(cli: CLI, tmp_path: Path) -> None:
    scenario = short_split_brain(tmp_path, 'found = ["split-brain"]')
    naive = scenario_report(cli, scenario)
    raft = scenario_report(cli, scenario, "-p", "raft")

    # What the naive diagram draws around the partition's split brain: the cut links,
    # heartbeats that no longer arrive, the self-promotions (the two cut-off followers
    # promote). That is the default window unless the run broke before the partition: on
    # a busy machine a replica's start can come 0.3 s after its peers' (imports under
    # load), and a naive follower that hears no leader for 300 ms promotes itself. Then
    # the default window is about that violation and says so, and the partition's is the
    # one around the violation its first self-promotion makes (or, when the cut-off side
    # led already, the first one after it was cut).
    run = load_run(naive.parent)
    partition = run.faults[0].start
    first = run.violations[0]
    w = choose_window(run)
    assert ("before any fault" in w.why) == (first.t < partition), (w.why, first.t, partition)
    promotion = min(
        (t for line in run.nodes.values() for t, _, label in line.marks
         if t >= partition and "self-promoted" in label),
        default=partition,
    )  # fmt: skip
    v = next(v for v in run.violations if v.t >= promotion)
    w = violation_window(run, v, "the partition's split brain")
    frames = tr.read_trace(tr.trace_path(naive.parent), w.t0, w.t1).messages
    # "partition r0 <-> r1,r2": the cut-off leader and the side it is cut from.
    lone, others = run.faults[0].label.split()[1], run.faults[0].label.split()[3].split(",")
    cut = {(m.src, m.dst) for m in frames if m.fate == "dropped"}
    assert {(lone, o) for o in others} | {(o, lone) for o in others} <= cut, cut
    assert any(m.type == "Heartbeat" and m.fate == "dropped" for m in frames)
    promoted = {
        name for name, line in run.nodes.items() for t, _, label in line.marks
        if w.t0 <= t <= w.t1 and "self-promoted" in label
    }  # fmt: skip
    # By the window's end the whole cut-off side leads: promoted in it, or (a startup
    # self-promotion: naive never steps down) leading already.
    leading = {
        name for name, line in run.nodes.items()
        if any(s <= w.t1 <= e and role == "leader" for s, e, role, _ in line.roles)
    }  # fmt: skip
    assert set(others) <= promoted | leading, (promoted, leading)
    assert promoted or first.t < partition, promoted
    # Under raft: the vote requests and the cut-off leader stepping down.
    run = load_run(raft.parent)
    w = choose_window(run)
    frames = tr.read_trace(tr.trace_path(raft.parent), w.t0, w.t1).messages
    assert any(m.type == "RequestVote" and m.fate == "delivered" for m in frames)
    kinds = {k for line in run.nodes.values() for t, k, _ in line.marks if w.t0 <= t <= w.t1}
    assert {"became_leader", "stepped_down"} <= kinds, kinds

    for page in (naive, raft):
        dom = chromium(page, "--dump-dom").stdout.decode()
        assert dom.count('src="data:image/png;base64,') == 4
        for section in ("params", "rate", "latency", "timelines", "violations", "spacetime"):
            assert f'id="{section}"' in dom, section
        shot = page.parent / "screenshot.png"
        chromium(page, "--window-size=1200,6000", f"--screenshot={shot}")
        from PIL import Image

        image = Image.open(shot).convert("RGB")
        # Figures render: thousands of rows of the page hold drawn (non-background) pixels,
        # among them the fault band's and the ok line's colours.
        width, height = image.size
        small = image.resize((width // 4, height // 4))
        drawn_rows = sum(
            1 for y in range(small.height)
            if any(sum(small.getpixel((x, y))) < 600 for x in range(0, small.width, 3))
        )  # fmt: skip
        assert drawn_rows * 4 > 2500, drawn_rows
