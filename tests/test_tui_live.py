"""The dashboard on a real lab: 3 naive replicas started with labctl.api.up in a tmp lab dir.

Each test drives the app by keys the way a user would and checks what the lab did (through
the dashboard's own picture and through `status`). Teardown always runs: `down`, then
SIGKILL of every process the lab had, the current one and the one it started with.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from labctl import api
from labctl.api import Lab
from labctl.cli.lab import lab_config
from labctl.errors import LabError
from tests.conftest import slack
from tests.test_tui_app import dialog, pilot_test, until
from tui.app import make_app
from tui.widgets.grid import row_styles_of
from tui.widgets.nodes import SPLIT_BRAIN_STYLE, NodesPanel


def _pids(lab: Lab) -> set[int]:
    pids = {lab.state["supervisor_pid"]}
    try:
        doc = lab.status()
        pids.update(p["pid"] for p in doc["processes"].values() if p.get("pid"))
    except LabError:
        pass  # the supervisor is already gone; its pid alone is still worth a SIGKILL
    return pids


@pytest.fixture
def lab_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "lab"
    pids: set[int] = set()
    try:
        lab = api.up(path, lab_config("naive", 3, 42, {}, False))
        pids |= _pids(lab)
        yield path
    finally:
        try:
            current = Lab.find(path)
            pids |= _pids(current)
            current.down()
        except LabError:
            pass  # no lab left in the dir (the test stopped it)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def leader_rows(app) -> list[str]:
    """The ids of the rows the nodes panel highlights as competing leaders."""
    styles = row_styles_of(app.query_one(NodesPanel).render())[1:]  # under the header
    ids = list(app.model.nodes)
    return [ids[i] for i, style in enumerate(styles) if style == SPLIT_BRAIN_STYLE]


@pilot_test
async def test_partition_makes_three_highlighted_leaders_and_heal_lifts_the_cut(
    lab_dir: Path,
) -> None:
    app = make_app(lab_dir)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: len(app.model.nodes) == 3 and app.model.leaders == ["r0"])
        await until(pilot, lambda: app.model.nodes["r1"].get("leader") == "r0")
        assert leader_rows(app) == []
        await dialog(pilot, "p")
        await pilot.press("enter")  # the leader (r0) against the rest, both ways
        await until(pilot, lambda: leader_rows(app) == ["r0", "r1", "r2"], timeout=8)
        await until(pilot, lambda: "3 LEADERS" in str(app.query_one(NodesPanel).border_title))
        assert app.model.rules[("r0", "r1")].drop and app.model.rules[("r2", "r0")].drop
        await pilot.press("h")
        await until(pilot, lambda: not app.model.faults and not app.model.rules)
        # naive cannot repair a split-brain: the leaders stay, as the README shows
        assert leader_rows(app) == ["r0", "r1", "r2"]
        await until(
            pilot, lambda: any("healed: partition r0 <-> r1,r2" in e.text for e in app.model.events)
        )
    assert len(Lab.find(lab_dir).status()["leaders"]) == 3


@pilot_test
async def test_pause_flow_freezes_the_node_and_counts_down(lab_dir: Path) -> None:
    app = make_app(lab_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.model.leaders == ["r0"])
        await dialog(pilot, "z")  # node: the leader, for: 5s
        # Long enough that a loaded machine cannot deliver the pause and its end in one
        # telemetry batch (the test must see the paused state in between).
        pause = slack(2.5)
        app.screen.query_one("#f-for").value = f"{pause * 1000:.0f}ms"
        await pilot.press("enter")
        await until(pilot, lambda: app.model.nodes["r0"]["state"] == "paused")
        pid = app.model.nodes["r0"]["pid"]
        assert psutil.Process(pid).status() == psutil.STATUS_STOPPED
        # the next status poll brings the countdown and the fault with what heals it
        await until(pilot, lambda: app.model.paused_left("r0") is not None)
        assert 0 <= (app.model.paused_left("r0") or 0) <= pause
        assert any(f["fault"] == "pause" for f in app.model.faults)
        await until(pilot, lambda: app.model.nodes["r0"]["state"] == "running", timeout=8)
        await until(pilot, lambda: any("healed: pause r0" in e.text for e in app.model.events))


@pilot_test
async def test_swap_protocol_ends_the_run_and_starts_a_new_lab(lab_dir: Path) -> None:
    old = Lab.find(lab_dir)
    old_pid, old_run = old.state["supervisor_pid"], Path(old.state["run_dir"])
    app = make_app(lab_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.model.has_status and app._protocols)
        await dialog(pilot, "w")
        await pilot.press("enter")  # the first other protocol: raft
        await until(pilot, lambda: app.model.protocol == "raft", timeout=20)
        assert app.model.supervisor_pid != old_pid
        assert len(app.model.nodes) == 3
        await until(pilot, lambda: app.model.events, timeout=5)  # the new lab's feed is live
    assert not psutil.pid_exists(old_pid) or psutil.Process(old_pid).status() == "zombie"
    assert (old_run / "summary.json").exists()
    new = Lab.find(lab_dir)
    assert new.status()["protocol"] == "raft"
    assert Path(new.state["run_dir"]) != old_run


@pilot_test
async def test_workload_starts_counts_ops_and_stops(lab_dir: Path) -> None:
    app = make_app(lab_dir)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.model.leaders == ["r0"])
        await dialog(pilot, "g")
        app.screen.query_one("#f-rate").value = "100"
        await pilot.press("enter")  # orders, 2 clients, to the leader
        await until(pilot, lambda: app.model.workload is not None, timeout=5)
        assert app.model.workload["kind"] == "orders"
        await until(pilot, lambda: app.model.ops.get("ok", 0) >= 20, timeout=8)
        assert "workload orders" in str(app.query_one(NodesPanel).border_title)
        await dialog(pilot, "g")
        await pilot.press("enter")  # the dialog offers stop now
        await until(pilot, lambda: app.model.workload is None, timeout=8)
        stopped = app.model.ops.get("invoke", 0)
        await pilot.pause(0.8)
        assert app.model.ops.get("invoke", 0) == stopped  # no client sends any more
    doc = Lab.find(lab_dir).status()  # (the supervisor keeps the last spec in "workload")
    assert not any(p["kind"] == "client" and p["state"] == "running"
                   for p in doc["processes"].values())  # fmt: skip
