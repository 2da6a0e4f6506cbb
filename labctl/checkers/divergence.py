"""Divergence: two replicas applied different commands at the same log index.

Whatever reached the log is compared, reads included: a replica whose log holds a get
where another's holds a put has a different history, even if the kv state agrees. One
violation per index (the first two replicas seen to disagree there). A replica applying
the same index again (a restart replaying its WAL) only replaces its own entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from labctl.checkers.base import Checker, Violation, get_float, get_int, get_str
from protocols.base import events as ev


class DivergenceChecker(Checker):
    kinds: ClassVar[frozenset[str]] = frozenset({ev.APPLIED})

    def __init__(self) -> None:
        super().__init__()
        self.by_index: dict[int, dict[str, str]] = {}  # index -> node -> request id
        self.reported: set[int] = set()

    def on_event(self, rec: Mapping[str, Any]) -> list[Violation]:
        node, index = get_str(rec, "src"), get_int(rec, "index")
        rid, t = get_str(rec, "request_id"), get_float(rec, "t")
        if node is None or index is None or rid is None or t is None:
            self.malformed += 1
            return []
        applied = self.by_index.setdefault(index, {})
        applied[node] = rid
        if index in self.reported:
            return []
        other = next((n for n, r in applied.items() if r != rid), None)
        if other is None:
            return []
        self.reported.add(index)
        first, second = sorted([(other, applied[other]), (node, rid)])
        return [
            Violation(
                kind="divergence",
                t=t,
                nodes=[first[0], second[0]],
                detail=(
                    f"index {index} holds {first[1]} on {first[0]} but {second[1]} on {second[0]}"
                ),
                evidence={"index": index, "applied": {first[0]: first[1], second[0]: second[1]}},
            )
        ]
