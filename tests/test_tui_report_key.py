"""The dashboard's `e`: the run it shows gets its report.html, the path in a notification,
and a run that cannot be drawn is a notification too, never a crash."""

from __future__ import annotations

from pathlib import Path

from tests.report_helpers import write_run
from tests.test_tui_app import notes, pilot_test, until
from tui.app import make_app
from tui.fake import FakeSource, calm_doc


def app_on(run_dir: Path) -> object:
    doc = calm_doc(3)
    doc["run_dir"] = str(run_dir)
    return make_app(source=FakeSource(doc))


@pilot_test
async def test_e_writes_the_report_of_the_run_shown(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", seconds=3, ops=60, frames=400)
    app = app_on(run)
    async with app.run_test(size=(100, 30)) as pilot:  # type: ignore[attr-defined]
        await until(pilot, lambda: app.model.run_dir)  # type: ignore[attr-defined]
        await pilot.press("e")
        # Rendering takes seconds on a loaded machine: generous slack, no sleep.
        done = await until(pilot, lambda: [n for n in notes(app) if "report" in n
                                           and "writing" not in n], timeout=120)  # fmt: skip
        assert done == [f"report written: {run / 'report.html'}"]
        assert (run / "report.html").exists()


@pilot_test
async def test_a_run_that_cannot_be_drawn_is_a_notification(tmp_path: Path) -> None:
    app = app_on(tmp_path / "no-such-run")
    async with app.run_test(size=(100, 30)) as pilot:  # type: ignore[attr-defined]
        await until(pilot, lambda: app.model.run_dir)  # type: ignore[attr-defined]
        await pilot.press("e")
        failed = await until(pilot, lambda: [n for n in notes(app) if "not written" in n],
                             timeout=120)  # fmt: skip
        assert len(failed) == 1
        assert app.is_running  # type: ignore[attr-defined]
