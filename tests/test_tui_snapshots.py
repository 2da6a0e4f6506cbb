"""Snapshots of the dashboard (pytest-textual-snapshot), on the scripted fake lab.

The fake's clock only moves as its story is delivered, CPU and memory are fixed, and no
text box has focus (no blinking cursor), so the picture is the same on every run. Update
after an intended change with `pytest tests/test_tui_snapshots.py --snapshot-update` and
look at the SVGs in tests/__snapshots__/ before committing them.
"""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from tests.test_tui_app import until
from tui.app import make_app
from tui.fake import FakeSource


def story(n: int) -> tuple[Any, Any]:
    source = FakeSource.demo(n)
    app = make_app(source=source)

    async def settle(pilot: Pilot) -> None:
        # every message of the story folded into the model, and the final status too
        await until(pilot, lambda: app.model.has_status and app.model.received == source.frames)
        await pilot.pause(0.3)  # a few refresh ticks

    return app, settle


def test_main_screen_after_the_split_brain(snap_compare: Any) -> None:
    app, settle = story(3)
    assert snap_compare(app, terminal_size=(110, 32), run_before=settle)


def test_nine_replicas_on_80x24(snap_compare: Any) -> None:
    app, settle = story(9)
    assert snap_compare(app, terminal_size=(80, 24), run_before=settle)


def test_nine_replicas_link_matrix_on_80x24(snap_compare: Any) -> None:
    app, settle = story(9)

    async def show_links(pilot: Pilot) -> None:
        await settle(pilot)
        await pilot.press("1")
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=(80, 24), run_before=show_links)


def test_help_screen(snap_compare: Any) -> None:
    app, settle = story(3)

    async def open_help(pilot: Pilot) -> None:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=(110, 32), run_before=open_help)
