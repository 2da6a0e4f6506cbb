"""EPaxos replicas driven by hand: every message waits until the schedule delivers it.

For schedules too precise for timers and random latency (the Sutra 2019 counterexample:
three recoveries in three ballots); the recovery tests use it too (tests/epaxos_helpers.py).
"""

from __future__ import annotations

import random
from typing import Any

from protocols.base import ClientRequest, NodeConfig, decode_options
from protocols.epaxos import EPaxosProtocol


class Manual:
    """Replicas driven by hand, for schedules too precise for timers and random latency:
    every message waits in `outbox` until the test delivers (or drops) it."""

    def __init__(self, n: int = 5, **options: object) -> None:
        ids = tuple(f"r{i}" for i in range(n))
        opts = decode_options(EPaxosProtocol.Options, dict(options))
        self.ids = ids
        self.now = 0.0
        self.replicas = {
            i: EPaxosProtocol(NodeConfig(i, ids, opts, random.Random(k))) for k, i in enumerate(ids)
        }
        self.outbox: list[tuple[str, str, Any]] = []
        self.applied: dict[str, list[str]] = {i: [] for i in ids}
        self.opts = opts
        self.disk: dict[str, list[Any]] = {i: [] for i in ids}  # fsynced records
        self.unsynced: dict[str, list[Any]] = {i: [] for i in ids}  # written lazily
        for i, p in self.replicas.items():
            self._take(i, p.start(0.0, []))
        self.outbox.clear()  # the start-up Syncs

    def _take(self, src: str, ready: Any) -> None:
        # Obligation order: what may leave before the fsync first, then the rest.
        if ready.persist:  # one fsync covers the lazily written records before these
            self.disk[src] += [*self.unsynced[src], *ready.persist]
            self.unsynced[src] = []
        self.outbox.extend((src, dst, m) for dst, m in [*ready.parallel, *ready.messages])
        self.applied[src].extend(c.command.request_id for c in ready.committed)
        self.outbox.extend((src, dst, m) for dst, m in ready.after)
        self.unsynced[src] += ready.persist_after

    def restart(self, node: str, seed: int = 99) -> None:
        """Crash `node` losing what it wrote without an fsync, start it from its disk;
        messages in flight to or from the old process are gone."""
        self.unsynced[node] = []
        self.drop(src=node)
        self.drop(dst=node)
        config = NodeConfig(node, self.ids, self.opts, random.Random(seed))
        self.replicas[node] = p = EPaxosProtocol(config)
        self.applied[node] = []
        self._take(node, p.start(self.now, list(self.disk[node])))

    def client(self, node: str, command: Any) -> None:
        self._take(node, self.replicas[node].on_client(self.now, "c0", ClientRequest(command)))

    def deliver(self, kind: str, src: str | None = None, dst: str | None = None) -> int:
        """Deliver every waiting message of type `kind` (optionally from src / to dst)."""
        keep, chosen = [], []
        for s, d, m in self.outbox:
            match = type(m).__name__ == kind and src in (None, s) and dst in (None, d)
            (chosen if match else keep).append((s, d, m))
        self.outbox = keep
        for s, d, m in chosen:
            if d in self.replicas:
                self._take(d, self.replicas[d].on_message(self.now, s, m))
        return len(chosen)

    def drop(self, kind: str | None = None, src: str | None = None, dst: str | None = None) -> None:
        self.outbox = [
            (s, d, m)
            for s, d, m in self.outbox
            if not (kind in (None, type(m).__name__) and src in (None, s) and dst in (None, d))
        ]

    def recover(self, node: str, iid: tuple[int, int]) -> None:
        """Make `node` start recovering `iid` now, as its timer would."""
        p = self.replicas[node]
        p._begin(self.now)
        p._start_recovery(iid)
        self._take(node, p._finish())
