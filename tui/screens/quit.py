"""Quit confirmation for `labctl up`: stop the lab too, or leave it running for `labctl dash`.

A lab started in the foreground dies with this process, so then the only way out is to stop
it (the screen says so rather than offering a choice it cannot honour).
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

STOP = "stop"
LEAVE = "leave"


class QuitScreen(ModalScreen[str | None]):
    BINDINGS = [
        Binding("escape", "dismiss(None)", "cancel"),
        Binding("y", f"dismiss('{STOP}')", "stop the lab"),
        # A binding, not a key_n handler: the screen's binding consumes the key, so the
        # app's `n` (run a scenario) does not fire once this screen is dismissed.
        Binding("n", "leave", "leave it running"),
    ]

    def __init__(self, can_leave: bool) -> None:
        super().__init__()
        self.can_leave = can_leave

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-box") as box:
            box.border_title = "Quit"
            if self.can_leave:
                yield Label("Stop the lab as well?  y: stop it · n: leave it running · esc: stay")
            else:
                yield Label("This lab dies with the dashboard: quitting stops it. y · esc: stay")
            with Horizontal(id="quit-buttons"):
                yield Button("Stop the lab and quit", variant="error", id="stop", compact=True)
                if self.can_leave:
                    yield Button("Leave it running", id="leave", compact=True)
                yield Button("Stay", id="stay", compact=True)

    def action_leave(self) -> None:
        if self.can_leave:
            self.dismiss(LEAVE)

    @on(Button.Pressed, "#stop")
    def _stop(self) -> None:
        self.dismiss(STOP)

    @on(Button.Pressed, "#leave")
    def _leave(self) -> None:
        self.dismiss(LEAVE)

    @on(Button.Pressed, "#stay")
    def _stay(self) -> None:
        self.dismiss(None)
