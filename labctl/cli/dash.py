"""`labctl dash`: attach the live dashboard to the lab running in the lab dir.

The dashboard (tui/) only reads and acts through labctl (labctl.api, labctl.session), so
attaching is harmless: quitting leaves the lab running (`labctl down` stops it). The CLI
is the one place that imports both labctl and tui (tests/test_layers.py).
"""

from __future__ import annotations

from labctl.cli.common import LabDir


def dash(lab_dir: LabDir = None) -> None:
    """Attach the dashboard to the running lab (the lab outlives it)."""
    from labctl.api import Lab
    from tui.app import run_dashboard

    Lab.find(lab_dir)  # no lab: one line on stderr and exit 2, before the screen is taken
    run_dashboard(lab_dir, stop_on_quit_prompt=False)
