"""EPaxos options: timeouts in float seconds, batching and thrifty PreAccepts, validated.

Users write durations as "200ms" (parsed by `protocols.base.decode_options`); the rules a
single type cannot express live in `Options.validate`.
"""

from __future__ import annotations

import math

import msgspec

from protocols.base import ConfigError
from protocols.base.mutations import check_mutate
from protocols.epaxos.mutations import MUTATIONS


class Options(msgspec.Struct, forbid_unknown_fields=True):
    # Send PreAccept only to a fast quorum (minus the leader) instead of every peer; the
    # others get it on the first resend if some of those do not answer in time.
    thrifty: bool = True
    # Commands per instance: requests that arrive while `max_inflight` of this replica's
    # instances are undecided wait, and then go together into one instance.
    batch: int = 16
    max_inflight: int = 64
    # How long an instance may stay undecided (or an execution wait on it) before this
    # replica starts recovering it with an explicit Prepare. Lab latencies are 1-5 ms:
    # this is tens of round trips, so a live command leader is rarely preempted.
    recovery_timeout: float = 0.2
    # Each failed attempt at recovering one instance doubles the wait before the next
    # (up to 16x), and a replica drives at most this many recoveries at once: when a
    # partition leaves thousands of instances undecided, every replica retrying each of
    # them every few hundred ms is a storm that starves the recoveries that could finish.
    max_recoveries: int = 32
    # A command leader re-sends its current phase to peers that did not answer (message
    # loss), and after it falls back from the fast path to the slow one, this often.
    resend_interval: float = 0.05
    # Every this often a replica tells one peer (in turn) how far it knows each replica's
    # instances; the peer sends the Commits it missed (while down or cut off).
    sync_interval: float = 0.1

    # A named bug to run with (protocols/epaxos/mutations.py), "" for none.
    mutate: str = ""

    def validate(self) -> None:
        """Raise ConfigError naming the option for values that cannot work."""
        for name in ("recovery_timeout", "resend_interval", "sync_interval"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"option {name!r} must be a finite duration > 0, not {value!r}")
        if self.resend_interval >= self.recovery_timeout:
            # Peers would start recovering an instance its live leader is still resending.
            raise ConfigError(
                "option 'resend_interval' must be below 'recovery_timeout' "
                f"({self.resend_interval:g}s >= {self.recovery_timeout:g}s)"
            )
        for name in ("batch", "max_inflight", "max_recoveries"):
            if getattr(self, name) < 1:
                raise ConfigError(f"option {name!r} must be >= 1")
        check_mutate("epaxos", self.mutate, MUTATIONS)
