"""What arrives from outside a process is data: typed, bounded, and counted when it is not.

Every lab process reads messages it did not write: telemetry (the supervisor), control
requests (supervisor, replicas, router, broker), client requests. Each is decoded into a
typed msgspec struct or checked with `plain` before anything acts on it; what does not fit
is counted per kind in a `Drops`, logged once per kind (the process's log says what kind
of garbage arrived, without one line per message), and dropped. Nothing here raises.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from typing import Annotated, Any

import msgspec

# Bounds shared by every decoder. A name is a node, client or event kind; a text is a key,
# value or reason. Telemetry is parsed by one process for the whole lab, so a map nested
# deeper than anything the lab writes is garbage, not data.
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
MAX_DEPTH = 16
MAX_ITEMS = 100_000  # elements in one map or list of a telemetry message

# Decode errors of every kind msgspec and the checks below raise on foreign bytes. msgpack
# nested past the C stack raises RecursionError, not DecodeError.
DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, RecursionError, TypeError,
                 ValueError, OverflowError)  # fmt: skip


class Drops:
    """Counts what was dropped, per kind; the first of each kind is logged (to stderr, the
    process's log) with a short sample, so the log shows every kind once."""

    def __init__(self, who: str) -> None:
        self.who = who
        self.counts: Counter[str] = Counter()

    def drop(self, kind: str, detail: object = "") -> None:
        self.counts[kind] += 1
        if self.counts[kind] == 1:
            text = str(detail)[:200]
            sys.stderr.write(f"{self.who}: dropped {kind}: {text} (counted from now on)\n")
            sys.stderr.flush()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        return dict(self.counts)


def plain(obj: Any, depth: int = MAX_DEPTH) -> bool:
    """True when `obj` is JSON-plain data: str keys, finite-or-not numbers, strings,
    bools, None, lists and maps of them, nested at most `depth` deep and at most MAX_ITEMS
    wide. Such data can go into events.jsonl, summary.json and a `--json` answer as it is
    (msgpack also decodes None, bytes and tuples as keys, bytes and extension values)."""
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return True
    if depth <= 0:
        return False
    if isinstance(obj, dict):
        if len(obj) > MAX_ITEMS:
            return False
        for k, v in obj.items():
            if not isinstance(k, str):
                return False
            if not (v is None or isinstance(v, (str, bool, int, float))) and not plain(
                v, depth - 1
            ):
                return False
        return True
    if isinstance(obj, list):
        if len(obj) > MAX_ITEMS:
            return False
        return all(
            v is None or isinstance(v, (str, bool, int, float)) or plain(v, depth - 1) for v in obj
        )
    return False


def finite(value: Any) -> bool:
    """A real number that is neither nan nor infinite (bools are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
