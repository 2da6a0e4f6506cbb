"""The faults panel: every fault in force and what heals it (the status document's list)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from tui.model import LabModel
from tui.widgets.panel import Panel

HINT = "none in force · p partition · d delay · l loss · z pause · k kill · c clock · s disk"


def render_faults(model: LabModel, width: int, height: int = 100) -> Table | Text:
    if not model.faults:
        return Text(HINT if model.nodes else "", "dim")
    table = Table(box=None, padding=(0, 1, 0, 0), pad_edge=False, show_edge=False, expand=True)
    table.add_column("fault", header_style="bold", ratio=3)
    table.add_column("heals with", header_style="bold", style="green", ratio=2)
    for f in model.faults:
        table.add_row(Text(str(f.get("describe", f.get("fault"))), "yellow"),
                      str(f.get("heals_with") or "-"))  # fmt: skip
    return table


class FaultsPanel(Panel):
    AREA = "faults"

    def render_model(self, model: LabModel, width: int, height: int) -> Table | Text:
        return render_faults(model, width, height)
