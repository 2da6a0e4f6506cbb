"""The base of every dashboard panel: a widget that renders the shared model on demand.

The app hands each panel the model (attributes down) and calls `show()` at most at its
refresh rate; a panel renders in `render()`, where its current size is known, so a resize
re-lays the content (columns dropped or added) without any extra bookkeeping.
"""

from __future__ import annotations

from rich.console import RenderableType
from textual.widget import Widget

from tui.model import LabModel


class Panel(Widget):
    """A read-only view of the model."""

    def __init__(self, model: LabModel, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.model = model
        self._shown = -1

    def show(self, model: LabModel, force: bool = False) -> None:
        """Re-render if the model changed since the last time (or when `force`d)."""
        self.model = model
        if force or model.version != self._shown:
            self._shown = model.version
            self.refresh(layout=self.styles.height is not None and self.styles.height.is_auto)

    def render(self) -> RenderableType:
        width, height = self.content_size
        # Before the first layout the size is zero: guess from the screen, re-render later.
        return self.render_model(
            self.model, width or max(20, self.app.size.width - 4), height or self.app.size.height
        )

    def render_model(self, model: LabModel, width: int, height: int) -> RenderableType:
        raise NotImplementedError
