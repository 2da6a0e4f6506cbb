"""Checkers for Maelstrom's workloads beyond lin-kv (lin-kv goes through the lab's own
linearizability checker): broadcast, g-counter, unique-ids, echo.

They read the history records nodes/external/workload.py writes (each names its
`workload`), and for broadcast the router's per-link counters (`router.links` events).

- broadcast: every acknowledged message must be in each replica's final read (taken
  after the run's faults healed and a settle time): `lost-message` names the replica, how
  many it lacks and whether it was restarted (a program that kept them in memory lost
  them). The figures Maelstrom users compare: messages between replicas per operation,
  and the latency until a message is visible everywhere (the first read of the trailing
  run of reads that all hold it, on every replica), median and maximum.
- g-counter: each final read lies between the sum of acknowledged adds and that sum plus
  the adds of unknown outcome (`wrong-counter`).
- unique-ids: no id handed out twice (`duplicate-id`), found live.
- echo: the reply carries what was sent (`bad-echo`), found live.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec

from labctl.checkers.base import Checker, Violation, get_float, get_str

WORKLOADS = frozenset({"broadcast", "g-counter", "unique-ids", "echo"})
_REPLICA = re.compile(r"r\d+\Z")
SHOWN = 10  # examples in a violation's detail and evidence


class _Op(msgspec.Struct):
    workload: str
    op: str
    node: str | None
    invoke_t: float
    invoke: dict[str, Any]
    status: str = "open"  # ok | fail | info | open
    complete_t: float | None = None
    done: dict[str, Any] | None = None


class MaelstromChecker(Checker):
    kinds: ClassVar[frozenset[str]] = frozenset({"router.links", "fault"})
    reads_history = True

    def __init__(self) -> None:
        super().__init__()
        self.open: dict[str, _Op] = {}
        self.ops: list[_Op] = []
        self.rows: dict[tuple[str, str], list[Any]] = {}  # (src, dst) -> its latest row
        self.restarts: dict[str, int] = {}
        self.ids: dict[str, str] = {}  # canonical id -> request id that got it
        self.stats: dict[str, Any] = {}

    def on_event(self, rec: Mapping[str, Any]) -> list[Violation]:
        if rec.get("kind") == "router.links":
            # Each report carries only the rows that moved (cumulative counters), so the
            # table is the latest row of every link seen.
            links = rec.get("links")
            if isinstance(links, list):
                for row in links:
                    if isinstance(row, list) and len(row) >= 3:
                        self.rows[(str(row[0]), str(row[1]))] = row
        elif rec.get("fault") in ("kill", "restart") and isinstance(rec.get("node"), str):
            if rec.get("fault") == "restart":
                node = rec["node"]
                self.restarts[node] = self.restarts.get(node, 0) + 1
        return []

    def on_history(self, rec: Mapping[str, Any]) -> list[Violation]:
        workload = rec.get("workload")
        if workload not in WORKLOADS:
            return []
        kind, rid, t = get_str(rec, "type"), get_str(rec, "request_id"), get_float(rec, "t")
        if kind is None or rid is None or t is None:
            self.malformed += 1
            return []
        if kind == "invoke":
            self.open[rid] = _Op(str(workload), get_str(rec, "op") or "", get_str(rec, "node"),
                                 t, dict(rec))  # fmt: skip
            return []
        op = self.open.pop(rid, None)
        if op is None or kind not in ("ok", "fail", "info"):
            self.malformed += 1
            return []
        op.status, op.complete_t, op.done = kind, t, dict(rec)
        self.ops.append(op)
        if kind != "ok":
            return []
        if op.op == "generate":
            return self._unique(op, rid)
        if op.op == "echo" and rec.get("echoed") != op.invoke.get("value"):
            return [Violation(kind="bad-echo", t=t, nodes=[op.node or "?"],
                              detail=f"{op.node} echoed {rec.get('echoed')!r} for "
                              f"{op.invoke.get('value')!r}",
                              evidence={"request_id": rid})]  # fmt: skip
        return []

    def _unique(self, op: _Op, rid: str) -> list[Violation]:
        assert op.done is not None and op.complete_t is not None
        key = msgspec.json.encode(op.done.get("id"), order="sorted").decode()
        first = self.ids.get(key)
        if first is None:
            self.ids[key] = rid
            return []
        return [Violation(kind="duplicate-id", t=op.complete_t, nodes=[op.node or "?"],
                          detail=f"id {key} handed out twice ({first}, then {rid} by {op.node})",
                          evidence={"id": key, "requests": [first, rid]})]  # fmt: skip

    def finish(self) -> list[Violation]:
        ops = self.ops + list(self.open.values())
        found: list[Violation] = []
        kinds = {o.workload for o in ops}
        if "broadcast" in kinds:
            found += self._broadcast([o for o in ops if o.workload == "broadcast"])
        if "g-counter" in kinds:
            found += self._counter([o for o in ops if o.workload == "g-counter"])
        if "unique-ids" in kinds:
            gen = [o for o in ops if o.op == "generate"]
            self.stats["unique-ids"] = {"ok": sum(o.status == "ok" for o in gen),
                                        "distinct": len(self.ids)}  # fmt: skip
        return found

    # -- broadcast -----------------------------------------------------------------------

    def _broadcast(self, ops: list[_Op]) -> list[Violation]:
        sent = {o.invoke.get("value"): o for o in ops if o.op == "broadcast"}
        acked = {m: o for m, o in sent.items() if o.status == "ok"}
        reads: dict[str, list[tuple[float, set[Any]]]] = {}
        final: dict[str, tuple[float, set[Any]]] = {}
        for o in ops:
            if o.op != "read" or o.status != "ok" or o.done is None or o.node is None:
                continue
            msgs = o.done.get("messages")
            if not isinstance(msgs, list):
                self.malformed += 1
                continue
            seen = {m for m in msgs if isinstance(m, (int, str, float))}
            reads.setdefault(o.node, []).append((o.invoke_t, seen))
            if o.done.get("final"):
                final[o.node] = (o.complete_t or o.invoke_t, seen)
        found = []
        for node, (t, seen) in sorted(final.items()):
            missing = sorted(set(acked) - seen, key=str)
            if not missing:
                continue
            restarted = self.restarts.get(node, 0)
            why = (f"; {node} was restarted {restarted}x during the run (what its program "
                   "kept only in memory died with it)") if restarted else ""  # fmt: skip
            found.append(Violation(
                kind="lost-message", t=t, nodes=[node],
                detail=f"{node}'s final read lacks {len(missing)} of {len(acked)} acknowledged "
                f"messages (e.g. {', '.join(map(str, missing[:SHOWN]))}){why}",
                evidence={"missing": missing[:SHOWN * 5], "count": len(missing),
                          "restarts": restarted},
            ))  # fmt: skip
        latencies, never = self._stable_latencies(acked, reads)
        server_msgs = sum(
            int(row[2]) for row in self.rows.values()
            if isinstance(row, list) and len(row) >= 3 and isinstance(row[0], str)
            and isinstance(row[1], str) and _REPLICA.match(row[0]) and _REPLICA.match(row[1])
        )  # fmt: skip
        n_ops = sum(1 for o in ops if not (o.done or {}).get("final"))
        self.stats["broadcast"] = {
            "broadcasts": len(sent), "acknowledged": len(acked),
            "final_reads": sorted(final), "lost": sum(
                len(set(acked) - seen) for _, seen in final.values()),
            "server_messages": server_msgs,
            "msgs_per_op": round(server_msgs / n_ops, 2) if n_ops else None,
            "stable_latency_ms": {
                "median": round(statistics.median(latencies) * 1000, 1) if latencies else None,
                "max": round(max(latencies) * 1000, 1) if latencies else None,
                "never_stable": never,
            },
        }  # fmt: skip
        return found

    @staticmethod
    def _stable_latencies(
        acked: dict[Any, _Op], reads: dict[str, list[tuple[float, set[Any]]]]
    ) -> tuple[list[float], int]:
        """Per acknowledged message: when did it become visible on every replica for good."""
        stable_at: dict[Any, float] = {}
        never: set[Any] = set()
        for node_reads in reads.values():
            node_reads.sort(key=lambda r: r[0])
            # from the end: a message is in the trailing run while every later read has it
            run_start: dict[Any, float] = {}
            live = set(acked)
            for t, seen in reversed(node_reads):
                for m in list(live):
                    if m in seen:
                        run_start[m] = t
                    else:
                        live.discard(m)
            for m in acked:
                if m not in run_start:
                    never.add(m)
                else:
                    stable_at[m] = max(stable_at.get(m, 0.0), run_start[m])
        out = [max(0.0, stable_at[m] - acked[m].invoke_t) for m in acked
               if m in stable_at and m not in never]  # fmt: skip
        return out, len(never)

    # -- g-counter -----------------------------------------------------------------------

    def _counter(self, ops: list[_Op]) -> list[Violation]:
        adds = [o for o in ops if o.op == "add"]
        lo = sum(int(o.invoke.get("delta") or 0) for o in adds if o.status == "ok")
        hi = lo + sum(int(o.invoke.get("delta") or 0) for o in adds if o.status in ("info", "open"))
        finals = [
            o for o in ops if o.op == "read" and o.status == "ok" and (o.done or {}).get("final")
        ]
        found = []
        for o in finals:
            v = (o.done or {}).get("value")
            if isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi:
                continue
            found.append(Violation(
                kind="wrong-counter", t=o.complete_t or o.invoke_t, nodes=[o.node or "?"],
                detail=f"{o.node}'s final read is {v!r}, but acknowledged adds sum to {lo}"
                + (f" (at most {hi} with the adds of unknown outcome)" if hi != lo else ""),
                evidence={"value": v, "acknowledged": lo, "possible": hi},
            ))  # fmt: skip
        self.stats["g-counter"] = {"acknowledged_sum": lo, "possible_sum": hi,
                                   "final_reads": {o.node: (o.done or {}).get("value")
                                                   for o in finals}}  # fmt: skip
        return found
