"""The form of one action: pick nodes, type a duration, tick one-way; apply or cancel.

Built from the action's fields (tui/actions.py). Keyboard first: the defaults are what one
usually wants (the leader against the rest), so `p` then enter cuts the leader off; tab moves
between fields, space toggles a node, enter (anywhere) or ctrl+s applies, escape cancels.
A form that does not validate stays open with the reason under it, so a typo never reaches
the lab.
"""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, RadioButton, RadioSet, SelectionList
from textual.widgets.selection_list import Selection

from tui import actions
from tui.actions import Action, Field


class ActionDialog(ModalScreen[dict[str, Any] | None]):
    BINDINGS = [
        Binding("escape", "cancel", "cancel"),
        Binding("ctrl+s", "apply", "apply", priority=True),
        # Enter applies from any field; space is what toggles a node or a radio button.
        Binding("enter", "apply", "apply", priority=True),
    ]

    def __init__(self, action: Action, values: dict[str, Any], options: dict[str, list[str]]):
        super().__init__(classes="dialog")
        self.action_spec = action
        self.initial = values
        self.options = options  # field key -> the names it offers

    def compose(self) -> ComposeResult:
        a = self.action_spec
        with Vertical(id="dialog-box") as box:
            box.border_title = f"{a.title} ({a.key})"
            yield Label(a.help, classes="dialog-help")
            pickers = [f for f in a.fields if f.kind in ("nodes", "node", "choice")]
            others = [f for f in a.fields if f not in pickers]
            with VerticalScroll(id="dialog-fields"):
                if pickers:
                    with Horizontal(classes="pickers"):
                        for f in pickers:
                            with Vertical(classes="picker"):
                                yield Label(f.label, classes="field-label")
                                yield self._picker(f)
                for f in others:
                    yield from self._field(f)
            yield Label("", id="dialog-error")
            with Horizontal(id="dialog-buttons"):
                yield Button("Apply", variant="primary", id="apply", compact=True)
                yield Button("Cancel", id="cancel", compact=True)
            yield Label("tab next · space toggle · enter apply · esc cancel",
                        classes="dialog-keys")  # fmt: skip

    def _picker(self, f: Field) -> SelectionList[str] | RadioSet:
        names = self.options.get(f.key, [])
        value = self.initial.get(f.key)
        if f.kind == "nodes":
            chosen = set(value or [])
            return SelectionList[str](
                *(Selection(n, n, n in chosen) for n in names), id=f"f-{f.key}", compact=True
            )
        return RadioSet(*(RadioButton(n, value=n == value, name=n) for n in names),
                        id=f"f-{f.key}", compact=True)  # fmt: skip

    def _field(self, f: Field) -> ComposeResult:
        value = self.initial.get(f.key)
        if f.kind == "flag":
            yield Checkbox(f.label, value=bool(value), id=f"f-{f.key}", compact=True)
            return
        with Horizontal(classes="text-field"):
            yield Label(f.label, classes="field-label")
            yield Input("" if value is None else str(value), id=f"f-{f.key}", compact=True)

    def on_mount(self) -> None:
        # On a loaded machine the fields may not be mounted yet when the screen is: focus
        # the first one once they are, rather than fail to find it.
        self.call_after_refresh(self._focus_first)

    def _focus_first(self) -> None:
        found = self.query("SelectionList, RadioSet, Input, Checkbox")
        if found:
            found.first().focus()

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in self.action_spec.fields:
            w = self.query_one(f"#f-{f.key}")
            if isinstance(w, SelectionList):
                out[f.key] = [n for n in self.options.get(f.key, []) if n in w.selected]
            elif isinstance(w, RadioSet):
                pressed = w.pressed_button
                out[f.key] = pressed.name if pressed is not None else None
            elif isinstance(w, Checkbox):
                out[f.key] = w.value
            elif isinstance(w, Input):
                out[f.key] = w.value.strip()
        return out

    def action_apply(self) -> None:
        if self.focused is not None and self.focused.id == "cancel":
            self.dismiss(None)  # enter on the Cancel button means cancel
            return
        values = self.values()
        problem = actions.check(self.action_spec, values)
        if problem:
            self.query_one("#dialog-error", Label).update(problem)
            return
        self.dismiss(values)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#apply")
    def _apply(self) -> None:
        self.action_apply()

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.action_cancel()
