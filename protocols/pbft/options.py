"""PBFT's options: the view-change timeout in float seconds, checkpoint and window sizes.

Users write durations as "300ms" (parsed by `protocols.base.decode_options`); the rules
between fields that a single type cannot express live in `Options.validate`. The defaults
suit a lab whose messages take 1-5 ms: a request normally executes within ~15 ms, so a
backup that waited 300 ms for one has good reason to suspect the primary.
"""

from __future__ import annotations

import math

import msgspec

from protocols.base import ConfigError
from protocols.base.mutations import check_mutate
from protocols.pbft.messages import MAX_BATCH
from protocols.pbft.mutations import MUTATIONS


class Options(msgspec.Struct, forbid_unknown_fields=True):
    # How long a backup waits for a request it holds to execute before it starts a view
    # change; doubled for each consecutive view change without progress (paper 4.5.2).
    view_change_timeout: float = 0.3
    # A checkpoint every K sequence numbers (paper 4.3); stable at 2f+1 matching messages.
    checkpoint_interval: int = 128
    # Sequence numbers accepted lie in (low, low + window]: the low watermark is the last
    # stable checkpoint, so at least one checkpoint fits in the window.
    window: int = 256
    # Request batching at the primary: it keeps at most `pipeline` sequence numbers in
    # flight (assigned, not executed); requests arriving meanwhile wait and then go
    # together, up to `batch` per number, so batches grow with the load. None waits
    # longer than `batch_delay` for a number while the window has room.
    batch: int = 64
    pipeline: int = 4
    batch_delay: float = 0.005
    # The lab key each replica's HMAC key is derived from (with the replica id). A lab
    # replaces this default with a key derived from its own secret (nodes/replica.py);
    # the constant serves the simulator and tests, where nobody else is listening.
    key: str = "labctl-pbft-lab-key"

    # A named bug to run with (protocols/pbft/mutations.py), "" for none.
    mutate: str = ""

    def validate(self) -> None:
        """Raise ConfigError naming the option for values that cannot work together."""
        t = self.view_change_timeout
        if not math.isfinite(t) or t <= 0:
            raise ConfigError(f"option 'view_change_timeout' must be finite and > 0, not {t!r}")
        d = self.batch_delay
        if not math.isfinite(d) or not 0 < d < t:
            raise ConfigError(
                f"option 'batch_delay' must be > 0 and below 'view_change_timeout', not {d!r}"
            )
        if not 1 <= self.batch < MAX_BATCH:
            raise ConfigError(f"option 'batch' must be between 1 and {MAX_BATCH - 1}")
        if self.pipeline < 1:
            raise ConfigError("option 'pipeline' must be >= 1")
        if self.checkpoint_interval < 1:
            raise ConfigError("option 'checkpoint_interval' must be >= 1")
        if self.window < self.checkpoint_interval:
            # Replicas could never reach the next checkpoint, so the watermark never moves.
            raise ConfigError(
                "option 'window' must be >= 'checkpoint_interval' "
                f"({self.window} < {self.checkpoint_interval})"
            )
        if not self.key:
            raise ConfigError("option 'key' must not be empty")
        check_mutate("pbft", self.mutate, MUTATIONS)
