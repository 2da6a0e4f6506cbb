"""`labctl dash`: attach the live dashboard to the lab running in the lab dir.

The dashboard (tui/) only reads and acts through labctl's client API, so attaching is
harmless: quitting leaves the lab running (`labctl down` stops it). Before the command is
registered in labctl.cli.main, `python -m labctl.cli.dash` runs it the same way.
"""

from __future__ import annotations

import sys

from labctl.cli.common import LabDir
from labctl.errors import LabError


def dash(lab_dir: LabDir = None) -> None:
    """Attach the dashboard to the running lab (the lab outlives it)."""
    from labctl.api import Lab
    from tui.app import run_dashboard

    Lab.find(lab_dir)  # no lab: one line on stderr and exit 2, before the screen is taken
    run_dashboard(lab_dir, stop_on_quit_prompt=False)


def main() -> None:
    import typer

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(dash)
    try:
        app()
    except LabError as e:
        sys.stderr.write(f"error: {e}\n")
        sys.exit(e.code)


if __name__ == "__main__":
    main()
