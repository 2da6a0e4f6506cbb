"""The base of every dashboard panel: a widget that renders the shared model on demand.

The app hands each panel the model (attributes down) and calls `show()` at most at its
refresh rate; a panel renders in `render()`, where its current size is known, so a resize
re-lays the content (columns dropped or added) without any extra bookkeeping.
"""

from __future__ import annotations

import time
from collections.abc import Hashable

from rich.console import RenderableType
from rich.text import Text
from textual.widget import Widget

from tui.model import LabModel


class Panel(Widget):
    """A read-only view of the model."""

    AREA = "nodes"  # the model's change counter this panel follows
    # Numbers that move all the time under load (commit indexes, message rates) are
    # repainted at most this often; a change in "roles" (who leads, who is paused or down)
    # is shown at the next tick regardless.
    MIN_INTERVAL = 0.0

    def __init__(self, model: LabModel, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.model = model
        self._shown = -1
        self._roles = -1
        self._shape: Hashable | None = None
        self._last = 0.0

    def show(self, model: LabModel, force: bool = False) -> None:
        """Re-render if the model changed since the last time (or when `force`d)."""
        self.model = model
        version = model.changes[self.AREA]
        if version == self._shown and not force:
            return
        now = time.monotonic()
        urgent = force or model.changes["roles"] != self._roles
        if urgent or now - self._last >= self.MIN_INTERVAL:
            self._shown, self._roles, self._last = version, model.changes["roles"], now
            # A layout pass re-arranges and repaints the whole screen (tens of ms with 9
            # replicas): ask for one only when an auto-sized panel changes size.
            shape = self.shape(model)
            auto = any(d is not None and d.is_auto for d in (self.styles.height, self.styles.width))
            self.refresh(layout=auto and (shape is None or shape != self._shape))
            self._shape = shape

    def shape(self, model: LabModel) -> Hashable | None:
        """What decides the panel's auto size, when that is cheap to know (None: unknown)."""
        return None

    def render(self) -> RenderableType:
        width, height = self.content_size
        # Before the first layout the size is zero: guess from the screen, re-render later.
        out = self.render_model(
            self.model, width or max(20, self.app.size.width - 4), height or self.app.size.height
        )
        if height and isinstance(out, Text) and self.styles.height is not None:
            # An auto-sized panel laid out for fewer lines than it now has (seen under load:
            # the first status lands between a layout and the size it was computed from,
            # and the nodes panel showed its header and no rows): ask for a layout pass.
            # Only "too small" counts: a wrapped line makes the laid-out height larger
            # than the line count, never smaller, so this cannot ask again and again.
            lines = out.plain.count("\n") + 1
            if self.styles.height.is_auto and lines > height:
                self.call_after_refresh(self.refresh, layout=True)
        return out

    def render_model(self, model: LabModel, width: int, height: int) -> RenderableType:
        raise NotImplementedError
