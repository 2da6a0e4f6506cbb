"""The events panel: elections, step-downs, faults, heals, exits and violations, newest last.

A scrolling log (RichLog keeps the lines and the scroll position); the panel writes only the
model's lines it has not written yet, and starts over when the model is reset for a new lab.
Times are since the lab started.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

from tui.model import EventLine, LabModel


def format_line(line: EventLine, t0: float) -> Text:
    rel = max(0.0, line.t - t0)
    minutes, seconds = divmod(rel, 60.0)
    return Text.assemble((f"{int(minutes):02d}:{seconds:04.1f} ", "dim"), (line.text, line.style))


class EventsPanel(RichLog):
    def __init__(self, model: LabModel, *, id: str | None = None) -> None:
        super().__init__(
            max_lines=2000, min_width=20, wrap=True, markup=False, auto_scroll=True, id=id
        )
        self.model = model
        self._seq = 0
        self._epoch = model.epoch
        self._width = 0

    def on_resize(self) -> None:
        # Lines are wrapped when written: write them again at the new width.
        if self._seq and self.size.width != self._width:
            self.clear()
            self._seq = 0
            self.show(self.model)
        self._width = self.size.width

    def show(self, model: LabModel, force: bool = False) -> None:
        self.model = model
        if model.epoch != self._epoch:
            self.clear()
            self._seq, self._epoch = 0, model.epoch
        if model.t0 is None:
            return  # times are shown since the lab's start: wait until it is known
        fresh = [e for e in model.events if e.seq > self._seq]
        for e in fresh:
            self.write(format_line(e, model.t0))
        if fresh:
            self._seq = fresh[-1].seq
