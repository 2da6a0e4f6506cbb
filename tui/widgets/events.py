"""The events panel: elections, step-downs, faults, heals, exits and violations, newest last.

A scrolling log (RichLog keeps the lines and the scroll position); the panel writes only the
model's lines it has not written yet, and starts over when the model is reset for a new lab.
Times are since the lab started.
"""

from __future__ import annotations

from rich.text import Text
from textual.geometry import Size
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
        self._mark = -1  # where the last written line's strips start (absolute), or -1
        self._last = 0  # the seq of the last line written

    def on_resize(self) -> None:
        # Lines are wrapped when written: write them again at the new width.
        if self._seq and self.size.width != self._width:
            self._rewrite()
        self._width = self.size.width

    def _rewrite(self) -> None:
        self.clear()
        self._seq, self._mark, self._last = 0, -1, 0
        self.show(self.model)

    def _drop_last(self) -> bool:
        """Take the last written line off the log (a folded line replaces it); False when
        that is not possible cheaply (it was not rendered yet, or scrolled out)."""
        start = self._mark - self._start_line
        if self._mark < 0 or self._deferred_renders or not 0 <= start <= len(self.lines):
            return False
        del self.lines[start:]
        self._line_cache.clear()
        self.virtual_size = Size(self._widest_line_width, len(self.lines))
        return True

    def show(self, model: LabModel, force: bool = False) -> None:
        self.model = model
        if model.epoch != self._epoch:
            self.clear()
            self._seq, self._epoch, self._mark, self._last = 0, model.epoch, -1, 0
        if model.t0 is None:
            return  # times are shown since the lab's start: wait until it is known
        fresh = [e for e in model.events if e.seq > self._seq]
        for e in fresh:
            if e.replaces is not None and e.replaces == self._last:
                if not self._drop_last():
                    self._rewrite()
                    return
            elif e.replaces is not None and e.replaces <= self._seq:
                self._rewrite()  # a line further up changed: rare, so write them all again
                return
            self._mark = -1 if self._deferred_renders else self._start_line + len(self.lines)
            self.write(format_line(e, model.t0))
            self._last = e.seq
        if fresh:
            self._seq = fresh[-1].seq
