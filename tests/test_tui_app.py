"""The dashboard app driven by keys, on a fake lab: dialogs, failures, help, quit, layouts.

`FakeSource` records what the app asked of the lab, so each test reads like a user session:
press keys, then check the action that reached the lab (or the notification that came back).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input, Label

from tests.conftest import slack
from tui.app import LabApp, make_app
from tui.fake import FakeSource, calm_doc
from tui.screens.dialog import ActionDialog
from tui.screens.help import HelpScreen
from tui.screens.quit import LEAVE, QuitScreen
from tui.widgets.links import LinksPanel
from tui.widgets.nodes import NodesPanel


def pilot_test(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async pilot test on its own event loop (no pytest async plugin needed)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return run


async def until(pilot: Pilot, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Let the app run until `predicate()` holds; fail the test after `timeout` seconds
    (nominal: stretched by conftest.SLACK for a loaded machine)."""
    timeout = slack(timeout)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := predicate()):
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout}s: {predicate}")
        await pilot.pause(0.02)
    return value


async def dialog(pilot: Pilot, key: str) -> ActionDialog:
    """Press `key` and wait until its dialog is up with a field focused: keys typed before
    that (a busy machine mounts screens late) would go to the main screen."""
    await pilot.press(key)
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, ActionDialog) and app.screen.focused)
    return app.screen  # type: ignore[return-value]


def calm(**kw: Any) -> tuple[LabApp, FakeSource]:
    src = FakeSource(calm_doc(3), **kw)
    return make_app(source=src), src


def notes(app: LabApp) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]


@pilot_test
async def test_partition_key_then_enter_cuts_the_leader_from_the_rest() -> None:
    app, src = calm()
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.model.has_status)
        await dialog(pilot, "p")
        await pilot.press("enter")
        await until(pilot, lambda: src.calls)
        assert src.calls == [
            ("partition", {"fault": "partition", "from": ["r0"], "to": ["r1", "r2"],
                           "oneway": False})]  # fmt: skip
        await until(pilot, lambda: any("partition r0 <-> r1,r2" in n for n in notes(app)))


@pilot_test
async def test_one_way_partition_by_keys() -> None:
    app, src = calm()
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.model.has_status)
        # from r0 (default) to r1 only: move to the 'to' list, untick r2, tick one-way
        await dialog(pilot, "p")
        await pilot.press("tab", "down", "down", "space", "tab", "space", "enter")
        await until(pilot, lambda: src.calls)
        spec = src.calls[0][1]
        assert spec["to"] == ["r1"] and spec["oneway"] is True


@pilot_test
async def test_a_failing_action_is_a_notification_not_a_crash() -> None:
    app, _ = calm(fail={"kill": "r0 is already stopped"})
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.model.has_status)
        await dialog(pilot, "k")
        await pilot.press("enter")
        await until(pilot, lambda: any("r0 is already stopped" in n for n in notes(app)))
        assert app.is_running and app.screen is app.screen_stack[0]
        assert list(app._notifications)[-1].severity == "error"


@pilot_test
async def test_a_bad_duration_keeps_the_dialog_open_with_the_reason() -> None:
    app, src = calm()
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.model.has_status)
        await dialog(pilot, "z")
        app.screen.query_one("#f-for", Input).value = "5 parsecs"
        await pilot.press("enter")
        error = app.screen.query_one("#dialog-error", Label)
        await until(pilot, lambda: "'for'" in str(error.render()))
        assert isinstance(app.screen, ActionDialog)
        await pilot.press("escape")
        await pilot.pause(0.05)
        assert not src.calls and not isinstance(app.screen, ActionDialog)


@pilot_test
async def test_keys_inside_a_dialog_do_not_open_another() -> None:
    app, _ = calm()
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.model.has_status)
        await dialog(pilot, "z")
        await pilot.press("k", "q")
        assert isinstance(app.screen, ActionDialog) and len(app.screen_stack) == 2


@pilot_test
async def test_help_screen_lists_every_key() -> None:
    app, _ = calm()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


@pilot_test
async def test_order_and_swap_go_to_the_lab() -> None:
    app, src = calm()
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.model.has_status)
        await dialog(pilot, "o")
        await pilot.press("enter")
        await until(pilot, lambda: any("ok from r0" in n for n in notes(app)))
        await dialog(pilot, "w")
        await pilot.press("enter")
        await until(pilot, lambda: ("swap", "raft") in src.calls)
        await until(pilot, lambda: any("raft runs in" in n for n in notes(app)))
    assert src.calls[0] == ("order", {"node": "r0", "user": "riya", "side": "buy", "qty": 200})


@pilot_test
async def test_quit_asks_in_up_mode_and_not_in_dash_mode() -> None:
    src = FakeSource(calm_doc(3))
    app = make_app(source=src, stop_on_quit_prompt=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.model.has_status)
        await pilot.press("q")
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("n")
    assert app.return_value == LEAVE
    app2, _ = calm()
    async with app2.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app2.model.has_status)
        await pilot.press("q")
    assert app2.return_value is None


@pilot_test
async def test_nine_replicas_fit_80x24_with_the_link_matrix() -> None:
    src = FakeSource.demo(9)
    app = make_app(source=src)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.model.has_status and len(app.model.nodes) == 9)
        await pilot.pause(0.2)
        assert app.query_one("#dash").has_class("compact")
        nodes = app.query_one(NodesPanel)
        assert nodes.region.height == 11  # title rule, header, 9 rows
        await pilot.press("1")
        await pilot.pause(0.1)
        links = app.query_one(LinksPanel)
        assert links.display and links.region.bottom <= 23  # above the footer
        assert links.region.height >= 11  # title rule, header, 10 rows (9 replicas + broker)
        assert "9 LEADERS" in str(nodes.border_title)


@pilot_test
async def test_a_large_terminal_shows_every_panel() -> None:
    app, _ = calm()
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: app.model.has_status)
        await pilot.pause(0.1)
        assert not app.query_one("#dash").has_class("compact")
        for panel in ("#nodes", "#links", "#events", "#charts", "#faults"):
            assert app.query_one(panel).region.area > 0, panel


@pilot_test
async def test_every_action_is_in_the_command_palette() -> None:
    app, _ = calm()
    async with app.run_test(size=(100, 30)):
        titles = [c.title for c in app.get_system_commands(app.screen)]
    assert "Partition (p)" in titles and "Swap protocol (w)" in titles


@pilot_test
async def test_garbage_telemetry_is_dropped_not_fatal() -> None:
    from tui.messages import TelemetryBatch

    app, _ = calm()
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.model.has_status)
        app.post_message(TelemetryBatch(
            t=1.0,
            events=[{"kind": "became_leader", "src": "r1", "t": "yesterday"},
                    {"kind": "fault", "src": ["r0"], "describe": None}],
            statuses={"r2": {"role": "follower", "applied_index": "many"}},
            links={"links": [["r0"], None, ["r0", "r1", "x"]]},
        ))  # fmt: skip
        await pilot.pause(0.3)
        assert app.is_running and app.model.malformed >= 1


@pilot_test
async def test_picking_another_node_by_keys() -> None:
    app, src = calm()
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.model.has_status)
        await dialog(pilot, "k")
        await pilot.press("down", "space", "enter")  # r0 is the default: pick r1
        await until(pilot, lambda: src.calls)
    assert src.calls == [("kill", {"fault": "kill", "node": "r1"})]


@pilot_test
async def test_ctrl_c_quits_even_from_a_dialog() -> None:
    app, src = calm()
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.model.has_status)
        await dialog(pilot, "z")
        await pilot.press("ctrl+c")
        await pilot.pause(0.1)
    assert not app.is_running and not src.calls
