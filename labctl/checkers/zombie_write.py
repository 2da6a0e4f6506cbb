"""Zombie write: the broker accepted a write carrying a superseded fencing token.

A token below the highest the broker has already seen comes from a deposed leader; with
fencing on the broker rejects it, with fencing off it lands (the incident's second buy).
An equal token is the current leader's own and is fine. One violation per (node, token):
a zombie leader's whole burst of writes is one finding, not hundreds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from labctl.checkers.base import Checker, Violation, get_float, get_int, get_str

BROKER_WRITE = "broker.write"


class ZombieWriteChecker(Checker):
    kinds: ClassVar[frozenset[str]] = frozenset({BROKER_WRITE})

    def __init__(self) -> None:
        super().__init__()
        self.highest: int | None = None  # highest token seen, accepted or not
        self.holder: str | None = None  # the node that first presented it, if known
        self.reported: set[tuple[str, int]] = set()

    def on_event(self, rec: Mapping[str, Any]) -> list[Violation]:
        token, t = get_int(rec, "token"), get_float(rec, "t")
        node = get_str(rec, "node") or get_str(rec, "from")
        if token is None or t is None or node is None:
            self.malformed += 1
            return []
        # The broker's own `highest` (after this write) covers writes we never saw.
        prior = [x for x in (self.highest, get_int(rec, "highest")) if x is not None]
        superseded_by = max(prior) if prior else None
        holder = self.holder
        top = max([*prior, token])
        if self.highest is None or top > self.highest:
            # A higher token the broker saw in a write we have no record of: holder unknown.
            self.highest, self.holder = top, node if top == token else None
        if rec.get("accepted") is not True or superseded_by is None or token >= superseded_by:
            return []
        if (node, token) in self.reported:
            return []
        self.reported.add((node, token))
        nodes = sorted({node, holder}) if holder else [node]
        return [
            Violation(
                kind="zombie-write",
                t=t,
                nodes=nodes,
                detail=(
                    f"broker accepted {node}'s write with token {token} after seeing "
                    f"token {superseded_by}"
                ),
                evidence={
                    "node": node,
                    "token": token,
                    "highest": superseded_by,
                    "highest_from": holder,
                    "request_id": get_str(rec, "request_id"),
                    "seq": get_int(rec, "seq"),
                },
            )
        ]
