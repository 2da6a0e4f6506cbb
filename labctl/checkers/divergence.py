"""Divergence: two replicas applied different commands at the same log index.

Whatever reached the log is compared, reads included: a replica whose log holds a get
where another's holds a put has a different history, even if the kv state agrees. One
violation per index (the first two replicas seen to disagree there). A replica applying
the same index again (a restart replaying its WAL) only replaces its own entry.

With `per_key` (EPaxos: only commands on one key are ordered, and each replica numbers
what it executes itself) the comparison is per key instead: the k-th command a replica
executed on a key must be the k-th every other replica executed on it. One violation per
key. A replica whose index goes back (it restarted and re-executes from its log) forgets
what it executed from that index on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from labctl.checkers.base import Checker, Violation, get_float, get_int, get_str, op_label
from protocols.base import events as ev


class DivergenceChecker(Checker):
    kinds: ClassVar[frozenset[str]] = frozenset({ev.APPLIED})

    def __init__(self, per_key: bool = False) -> None:
        super().__init__()
        # index -> (request id, what it is, the nodes that applied it there, in order): the
        # common case, every node applied the same command at the index, as one row.
        self.agreed: dict[int, tuple[str, ...]] = {}
        self.odd_labels: dict[int, dict[str, str]] = {}  # index -> node -> its other label
        # Where nodes differ (or one applied another label): a row per node.
        self.by_index: dict[int, dict[str, str]] = {}  # index -> node -> request id
        self.labels: dict[int, dict[str, str]] = {}  # index -> node -> what it applied there
        self.reported: set[int] = set()
        self.per_key = per_key
        # key -> [(rid, first node, what it was)]
        self.key_order: dict[str, list[tuple[str, str, str]]] = {}
        self.executed: dict[str, list[tuple[int, str]]] = {}  # node -> [(index, key)]
        self.positions: dict[str, dict[str, int]] = {}  # node -> key -> commands executed
        self.reported_keys: set[str] = set()

    def on_event(self, rec: Mapping[str, Any]) -> list[Violation]:
        node, index = get_str(rec, "src"), get_int(rec, "index")
        rid, t = get_str(rec, "request_id"), get_float(rec, "t")
        if node is None or index is None or rid is None or t is None:
            self.malformed += 1
            return []
        if self.per_key:
            return self._per_key(node, index, rid, t, rec.get("key"), rec)
        if index in self.reported:
            return []  # one violation per index: what else lands there changes nothing
        label = op_label(rec)
        agreed = self.agreed.get(index)
        if agreed is not None:
            if agreed[0] == rid:
                if node not in agreed[2:]:
                    self.agreed[index] = (*agreed, node)
                # The same command, told with fewer fields (a snapshot's image has no key
                # or value): kept aside, for the sentence if a disagreement comes.
                if label != agreed[1]:
                    self.odd_labels.setdefault(index, {})[node] = label
                elif index in self.odd_labels:
                    self.odd_labels[index].pop(node, None)
                return []
            # The first disagreement there: back to a row per node.
            del self.agreed[index]
            odd = self.odd_labels.pop(index, {})
            self.by_index[index] = {n: agreed[0] for n in agreed[2:]}
            self.labels[index] = {n: odd.get(n, agreed[1]) for n in agreed[2:]}
        elif index not in self.by_index:
            self.agreed[index] = (rid, label, node)
            return []
        applied = self.by_index[index]
        applied[node] = rid
        labels = self.labels[index]
        labels[node] = label
        other = next((n for n, r in applied.items() if r != rid), None)
        if other is None:
            return []
        self.reported.add(index)
        del self.labels[index]
        del self.by_index[index]
        first, second = sorted([(other, applied[other]), (node, rid)])
        said = {n: f"{labels.get(n, '?')} ({applied[n]})" for n in (other, node)}
        return [
            Violation(
                kind="divergence",
                t=t,
                nodes=[first[0], second[0]],
                detail=(
                    f"index {index} holds {said[first[0]]} on {first[0]} but {said[second[0]]} "
                    f"on {second[0]}"
                ),
                evidence={"index": index, "applied": {first[0]: first[1], second[0]: second[1]}},
            )
        ]

    def _per_key(
        self, node: str, index: int, rid: str, t: float, key: Any, rec: Mapping[str, Any]
    ) -> list[Violation]:
        if not isinstance(key, str):
            self.malformed += 1
            return []
        executed = self.executed.setdefault(node, [])
        positions = self.positions.setdefault(node, {})
        if executed and index <= executed[-1][0]:
            # A restart: the replica executes its log again from `index`.
            del executed[next(i for i, (at, _) in enumerate(executed) if at >= index) :]
            positions.clear()
            for _, k in executed:
                positions[k] = positions.get(k, 0) + 1
        executed.append((index, key))
        position = positions.get(key, 0)
        positions[key] = position + 1
        order = self.key_order.setdefault(key, [])
        if position == len(order):
            order.append((rid, node, op_label(rec)))
            return []
        first_rid, first_node, first_label = order[position]
        if first_rid == rid or key in self.reported_keys:
            return []
        self.reported_keys.add(key)
        a, b = sorted([(first_node, first_rid), (node, rid)])
        said = {first_rid: f"{first_label} ({first_rid})", rid: f"{op_label(rec)} ({rid})"}
        return [
            Violation(
                kind="divergence",
                t=t,
                nodes=[a[0], b[0]] if a[0] != b[0] else [a[0]],
                detail=(
                    f"key {key!r}: command {position + 1} is {said[a[1]]} on {a[0]} but "
                    f"{said[b[1]]} on {b[0]}"
                ),
                evidence={
                    "key": key,
                    "position": position + 1,
                    "applied": {a[0]: a[1], b[0]: b[1]},
                },
            )
        ]
