"""The help screen (`?`): every key, what it does, and where the same verbs live on the CLI."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.actions import ACTIONS

VIEW_KEYS = [
    ("1 2 3 4", "show links / events / charts / faults (compact layout)"),
    ("ctrl+p", "command palette: every action by name"),
    ("e", "write this run's report.html (as `labctl report`) and show its path"),
    ("?", "this help"),
    ("q", "quit"),
]


def help_table() -> Table:
    table = Table(box=None, padding=(0, 2, 0, 0), show_header=False, pad_edge=False)
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    table.add_row("", Text("faults and actions", "bold underline"))
    for a in ACTIONS.values():
        table.add_row(a.key, Text.assemble((a.title, "bold"), f"  {a.help}"))
    table.add_row("", "")
    table.add_row("", Text("view", "bold underline"))
    for key, what in VIEW_KEYS:
        table.add_row(key, what)
    table.add_row("", "")
    table.add_row(
        "",
        Text("Nodes leading at once are red. Every fault here is also "
             "`labctl fault ...` in a shell.", "dim"),
    )  # fmt: skip
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss(None)", "close"),
        Binding("question_mark", "dismiss(None)", "close"),
        Binding("q", "dismiss(None)", "close"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box") as box:
            box.border_title = "labctl dash · keys"
            box.border_subtitle = "esc to close"
            yield Static(help_table())
