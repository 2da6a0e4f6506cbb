"""A node's own clock: true time plus an offset and a drift the clock fault can change.

    node = true + offset + drift * (true - t_set)

Setting an offset re-anchors at now (the clock jumps to true + offset and drifts on from
there); setting only a drift keeps the current skew so the clock does not jump.
"""

from __future__ import annotations

from collections.abc import Callable

from nodes.process import true_now


class NodeClock:
    def __init__(self, true_clock: Callable[[], float] = true_now) -> None:
        self._true = true_clock
        self.offset = 0.0
        self.drift = 0.0
        self.t_set = self._true()

    def now(self) -> float:
        t = self._true()
        return t + self.offset + self.drift * (t - self.t_set)

    def skew(self, true_time: float | None = None) -> float:
        t = self._true() if true_time is None else true_time
        return self.offset + self.drift * (t - self.t_set)

    def set(self, offset: float | None = None, drift: float | None = None) -> None:
        t = self._true()
        if offset is None:
            offset = self.skew(t)
        if drift is not None:
            if drift <= -1.0:
                raise ValueError(f"drift must be > -1 (a clock cannot run backwards): {drift}")
            self.drift = drift
        self.offset = offset
        self.t_set = t

    def to_true(self, node_time: float) -> float:
        """The true time at which this clock will read `node_time` (for deadlines)."""
        # node = t + offset + drift*(t - t_set)  =>  t = (node - offset + drift*t_set)/(1+drift)
        return (node_time - self.offset + self.drift * self.t_set) / (1.0 + self.drift)
