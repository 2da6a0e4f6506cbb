"""The workload (g) and scenario (n) dialogs, on a fake lab: what reaches the lab, and what
the dashboard says about it."""

from __future__ import annotations

from typing import Any

from textual.widgets import Input, Label, RadioButton, RadioSet

from tests.test_tui_app import dialog, notes, pilot_test, until
from tui.app import LabApp, make_app
from tui.fake import FakeSource, calm_doc
from tui.screens.dialog import ActionDialog
from tui.widgets.nodes import NodesPanel


def calm(**kw: Any) -> tuple[LabApp, FakeSource]:
    """A calm fake lab polled every 50 ms, so the title follows what the actions changed."""
    src = FakeSource(calm_doc(3), **kw)
    src.poll_interval = 0.05  # type: ignore[misc]
    return make_app(source=src), src


def title(app: LabApp) -> str:
    return str(app.query_one(NodesPanel).border_title)


@pilot_test
async def test_workload_start_then_stop_and_the_title_shows_it() -> None:
    app, src = calm()
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.model.has_status)
        await dialog(pilot, "g")
        await pilot.press("enter")
        await until(pilot, lambda: src.calls)
        assert src.calls[0] == (
            "workload",
            {
                "action": "start",
                "spec": {
                    "kind": "orders",
                    "rate": 50.0,
                    "clients": 2,
                    "target": "leader",
                    "reads": "log",
                },
            },
        )
        await until(pilot, lambda: any("orders at 50/s to leader" in n for n in notes(app)))
        await until(pilot, lambda: "workload orders" in title(app))
        assert "ops ok 117" in title(app)
        await dialog(pilot, "g")  # a workload runs: the dialog now offers to stop it
        await pilot.press("enter")
        await until(pilot, lambda: len(src.calls) == 2)
        assert src.calls[1] == ("workload", {"action": "stop"})
        await until(pilot, lambda: any("stopped 2 clients" in n for n in notes(app)))
        await until(pilot, lambda: "workload" not in title(app))


@pilot_test
async def test_workload_bad_rate_stays_in_the_dialog_and_failures_notify() -> None:
    app, src = calm(fail={"workload": "a workload is already running"})
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.model.has_status)
        await dialog(pilot, "g")
        app.screen.query_one("#f-rate", Input).value = "fast"
        await pilot.press("enter")
        error = app.screen.query_one("#dialog-error", Label)
        await until(pilot, lambda: "rate" in str(error.render()))
        assert isinstance(app.screen, ActionDialog) and not src.calls
        app.screen.query_one("#f-rate", Input).value = "20"
        await pilot.press("enter")
        await until(pilot, lambda: any("already running" in n for n in notes(app)))
        assert app.is_running


@pilot_test
async def test_scenario_runs_reports_its_verdict_and_starts_a_fresh_lab() -> None:
    from labctl.scenario.library import names

    app, src = calm()
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.model.has_status and app._protocols)
        await dialog(pilot, "n")
        await pilot.press("enter")
        await until(pilot, lambda: src.calls)
        # the first built-in scenario that runs with the current lab's protocol (naive
        # cannot run pbft-equivocation: it has no byzantine modes), then a fresh lab
        first = next(n for n in names() if n != "pbft-equivocation")
        assert src.calls == [("scenario", {"name": first, "protocol": "naive", "fresh": True})]
        await until(pilot, lambda: any("verdict PASS" in n for n in notes(app)))
        note = next(n for n in notes(app) if "verdict PASS" in n)
        assert "split-brain x2" in note and "ops ok 48" in note
        # the verdict stays after its toast: in the title and in the events
        assert "PASS" in app._nodes_title()
        assert any("verdict PASS" in e.text for e in app.model.events)
        await until(pilot, lambda: any("a fresh lab runs in" in n for n in notes(app)))
        await until(pilot, lambda: app.model.run_dir.endswith("-fresh"))
        assert app._scenario is None and app.model.notice is None


@pilot_test
async def test_a_scenario_that_does_not_fit_the_protocol_keeps_the_dialog_open() -> None:
    app, src = calm()
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.model.has_status and app._protocols)
        box = await dialog(pilot, "n")
        buttons = box.query_one("#f-scenario", RadioSet).query(RadioButton)
        next(b for b in buttons if b.name == "pbft-equivocation").value = True
        await pilot.pause(0.05)
        await pilot.press("enter")
        error = box.query_one("#dialog-error", Label)
        await until(pilot, lambda: "no byzantine modes" in str(error.render()))
        assert app.screen is box
        await pilot.press("escape")
        assert not src.calls


@pilot_test
async def test_a_failing_scenario_is_a_notification() -> None:
    app, _ = calm(fail={"scenario": "no such protocol"})
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.model.has_status and app._protocols)
        await dialog(pilot, "n")
        await pilot.press("enter")
        await until(pilot, lambda: any("no such protocol" in n for n in notes(app)))
        assert app.is_running and app._scenario is None and app.model.notice is None


@pilot_test
async def test_new_actions_are_in_the_command_palette() -> None:
    app, _ = calm()
    async with app.run_test(size=(100, 30)):
        titles = [c.title for c in app.get_system_commands(app.screen)]
    assert "Workload (g)" in titles and "Run scenario (n)" in titles
