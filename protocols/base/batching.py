"""BatchingProtocol: one `Ready` per input, built in `self.out` by the handlers.

Every protocol core does the same around each input: refuse inputs before `start` (and a
second `start`), take the input's `now`, open an empty batch the handlers (and the mixins
they call) append to, and at the end add what the whole input decides (a hard state, the
next deadline), apply the fence (`Ready.seal`) and hand the batch back. Written once here;
a core says only what its batches end with, in `_seal`:

    def on_tick(self, now):
        self._begin(now)
        ...                       # handlers: self.out.send(...), self.out.persist...
        return self._finish()     # _seal(out), then the fence

`self.now` is the node clock of the input being handled, `self.out` its batch.
"""

from __future__ import annotations

from protocols.base.contract import NodeConfig, Protocol, Ready


class BatchingProtocol(Protocol):
    def __init__(self, config: NodeConfig) -> None:
        super().__init__(config)
        self.now = 0.0
        self.out = Ready()
        self._started = False

    def _begin(self, now: float, *, starting: bool = False) -> None:
        """Open the batch of one input at node time `now`; `starting` for `start` itself."""
        if starting:
            if self._started:
                raise RuntimeError("start() called twice")
            self._started = True
        elif not self._started:
            raise RuntimeError("start() must be called before any other input")
        self.now = now
        self.out = Ready()

    def _finish(self) -> Ready:
        """Close the input's batch: the core's `_seal`, then the fence, then hand it out."""
        out = self.out
        self._seal(out)
        out.seal()
        # `self.out` stays this batch until the next input's `_begin` opens a fresh one
        # (nothing writes to it between inputs): one Ready an input, not two.
        return out

    def _seal(self, out: Ready) -> None:
        """What every batch of this protocol ends with (the hard state, the next deadline).
        `out` is still `self.out`."""
