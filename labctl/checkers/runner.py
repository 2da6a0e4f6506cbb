"""All the checkers over one run: live, record by record, or offline from a run directory.

The supervisor feeds every events.jsonl record to `on_event` and every history.jsonl
record to `on_history` as it writes them; each call costs a dict lookup plus the few
checkers that read that kind, and returns the violations whose evidence that record
completed. `finish()` runs the whole-run checks (lost writes, linearizability).
`check_run_dir` replays a run's files through the same code in file order, which is the
order the supervisor saw them in, so offline and live give the same verdict.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import msgspec

from labctl.checkers.base import Checker, CheckerConfig, Violation
from labctl.checkers.broker_orders import BrokerOrdersChecker
from labctl.checkers.divergence import DivergenceChecker
from labctl.checkers.duplicate_apply import DuplicateApplyChecker
from labctl.checkers.lease_overlap import LeaseOverlapChecker
from labctl.checkers.linearizability import Budget, LinearizabilityChecker
from labctl.checkers.lost_write import LostWriteChecker
from labctl.checkers.maelstrom import MaelstromChecker
from labctl.checkers.split_brain import SplitBrainChecker
from labctl.checkers.zombie_write import ZombieWriteChecker


class CheckerSet:
    """Every checker, fed one record at a time."""

    def __init__(
        self, config: CheckerConfig | Mapping[str, Any] | None = None, share: bool = True
    ) -> None:
        """`share`: intern the strings of each record the checkers keep (see _SHARED); off
        for a caller whose records already share them (the simulator's are built in this
        process, not decoded line by line)."""
        if config is None:
            config = CheckerConfig()
        elif not isinstance(config, CheckerConfig):
            config = CheckerConfig.from_lab(config)  # a lab config: {"protocol": ...}
        self.config = config
        self.linearizability = LinearizabilityChecker(
            Budget(config.lin_budget, config.lin_seconds, config.lin_memory_mb),
            wall_clock=config.lin_wall_clock,
        )
        self.broker_orders = BrokerOrdersChecker()
        self.checkers: list[Checker] = [
            SplitBrainChecker(),
            DivergenceChecker(per_key=config.per_key),
            DuplicateApplyChecker(exactly_once=config.exactly_once),
            LeaseOverlapChecker(),
            ZombieWriteChecker(),
            self.broker_orders,
        ]
        if config.applied_events:
            self.checkers.append(LostWriteChecker())
        self.maelstrom = MaelstromChecker()
        self.checkers.append(self.maelstrom)
        if config.linearizability:
            self.checkers.append(self.linearizability)
        # kind -> its readers, in self.checkers' order (the order of the violations one
        # record completes). A kind some checker reads only when a field is there (`gated`)
        # has two lists instead, with and without that checker.
        self.by_kind: dict[str, list[Checker]] = {}
        self.gated: dict[str, tuple[str, list[Checker], list[Checker]]] = {}
        kinds = sorted({kind for c in self.checkers for kind in c.kinds})
        for kind in kinds:
            readers = [c for c in self.checkers if kind in c.kinds]
            fields = {c.gates[kind] for c in readers if kind in c.gates}
            if not fields:
                self.by_kind[kind] = readers
                continue
            (field,) = fields  # one gate per kind: all the runner looks up
            ungated = [c for c in readers if kind not in c.gates]
            self.gated[kind] = (field, readers, ungated)
        self.history_readers = [c for c in self.checkers if c.reads_history]
        self.share = share
        self.violations: list[Violation] = []  # everything found so far, in order found
        self.n_events = self.n_history = 0  # records fed
        # Nodes told to lie (a byzantine fault): what they say they applied, led or leased
        # proves nothing about the protocol, whose safety is about the honest replicas. A
        # node stays excluded after it is made honest again: its state is whatever it was.
        self.byzantine: set[str] = set()
        self.finished = False

    def on_event(self, rec: Mapping[str, Any]) -> list[Violation]:
        """One events.jsonl record; the violations it completes."""
        # This runs for every record of a run: the common path is a few lookups and the
        # calls to the checkers that read the kind, nothing built unless one finds something.
        if self.finished:
            self._check_open()
        if self.share:
            _share(rec)
        self.n_events += 1
        kind = rec.get("kind")
        if kind == "fault" and rec.get("fault") == "byzantine":
            node, mode = rec.get("node"), rec.get("mode")
            if isinstance(node, str) and mode not in (None, "", "honest"):
                self.byzantine.add(node)
        if self.byzantine and rec.get("src") in self.byzantine:
            return []
        handlers = self.by_kind.get(kind)  # type: ignore[arg-type]
        if handlers is None:
            gate = self.gated.get(kind)  # type: ignore[arg-type]
            if gate is None:
                return []
            handlers = gate[1] if gate[0] in rec else gate[2]
        found: list[Violation] = []
        for c in handlers:
            v = c.on_event(rec)
            if v:
                found += v
        if found:
            self.violations.extend(found)
        return found

    def on_history(self, rec: Mapping[str, Any]) -> list[Violation]:
        """One history.jsonl record; the violations it completes."""
        if self.finished:
            self._check_open()
        if self.share:
            _share(rec)
        self.n_history += 1
        found: list[Violation] = []
        for c in self.history_readers:
            v = c.on_history(rec)
            if v:
                found += v
        if found:
            self.violations.extend(found)
        return found

    def check_online(self) -> list[Violation]:
        """The linearizability search on what changed since the last call (the caller
        paces it: it costs more than a record)."""
        self._check_open()
        if not self.config.linearizability:
            return []
        found = self.linearizability.check_online()
        self.violations.extend(found)
        return found

    def finish(self, lin_deadline: float | None = None) -> list[Violation]:
        """The whole-run checks: the violations found now (not the ones already returned).

        `lin_deadline` (time.monotonic()) bounds the linearizability search over all keys
        (each key has its own budget besides). `violations` holds the full list afterwards.
        """
        self._check_open()
        self.finished = True
        found = [
            v
            for c in self.checkers
            for v in (c.finish(lin_deadline) if c is self.linearizability else c.finish())
        ]
        self.violations.extend(found)
        return found

    @property
    def malformed(self) -> int:
        return sum(c.malformed for c in self.checkers)

    def summary(self) -> dict[str, Any]:
        """The verdict as JSON-ready data."""
        lin = self.linearizability.results
        return {
            "safe": not self.violations,
            "violations": [v.to_dict() for v in self.violations],
            "counts": dict(Counter(v.kind for v in self.violations)),
            "records": {
                "events": self.n_events,
                "history": self.n_history,
                "malformed": self.malformed,
            },
            "linearizability": {
                "checked": self.config.linearizability,
                "keys": len(lin),
                "ops": sum(r.ops for r in lin.values()),
                "unknown_keys": self.linearizability.unknown_keys,
                "unknown": self.linearizability.unknown,  # key -> the budget that ran out
            },
            "workloads": self.maelstrom.stats,
            "broker": self.broker_orders.summary(),
        }

    def _check_open(self) -> None:
        if self.finished:
            raise RuntimeError("CheckerSet.finish() was already called")


# The fields whose strings the checkers keep for the whole run, one copy per record that
# names them unless shared: a request id is in N apply events, its invoke and its
# completion, and JSON decoding makes a new string each time (measured on a Raft soak
# record: 190 of 330 MB were such copies).
_SHARED = ("request_id", "src", "node", "process", "key", "value")


def _share(rec: Mapping[str, Any]) -> None:
    if rec.__class__ is dict:
        for field in _SHARED:
            v = rec.get(field)  # type: ignore[attr-defined]
            if v.__class__ is str:
                rec[field] = sys.intern(v)  # type: ignore[index]


class RunDirError(ValueError):
    """A run directory whose record cannot be read: a verdict from it would be a guess."""


def check_run_dir(
    path: str | Path,
    config: CheckerConfig | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Recompute a run's verdict from its files (events.jsonl, history.jsonl, lab.json).

    Without `config`, exactly-once comes from lab.json's protocol (a run without lab.json
    is checked as not exactly-once, the cautious default), and `overrides` (the
    CheckerConfig fields a user set, such as the search budget) go on top. A torn last
    line (the lab crashed mid-write) is skipped and counted, like any malformed record.
    Raises RunDirError for what cannot be read: a lab.json that is not a lab's record, a
    .jsonl file that is not text, or one with lines but not a single record in it.
    """
    root = Path(path)
    protocol = None
    lab = root / "lab.json"
    if config is None:
        lab_config: dict[str, Any] = {}
        if lab.exists():
            lab_config = _lab_config(lab)
        protocol = lab_config.get("protocol")
        config = CheckerConfig.from_lab(lab_config, **(overrides or {}))
    checkers = CheckerSet(config)
    torn = 0
    for name, feed in (("events.jsonl", checkers.on_event), ("history.jsonl", checkers.on_history)):
        good = bad = 0
        for rec in read_jsonl(root / name):
            if rec is None:
                bad += 1
            else:
                good += 1
                feed(rec)
        if bad and not good:
            raise RunDirError(f"{root / name}: not one line of it is a JSON record")
        torn += bad
    checkers.finish()
    out = {"run_dir": str(root), "protocol": protocol, "exactly_once": config.exactly_once}
    out.update(checkers.summary())
    out["records"]["malformed"] += torn
    return out


def _lab_config(lab: Path) -> dict[str, Any]:
    try:
        doc = json.loads(lab.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise RunDirError(f"{lab}: cannot read it: {e}") from None
    config = doc.get("config") if isinstance(doc, dict) else None
    if not isinstance(config, dict) or not isinstance(config.get("protocol"), str):
        raise RunDirError(f"{lab}: not a lab record (no config with a protocol)")
    return config


def read_jsonl(path: Path) -> Iterator[dict[str, Any] | None]:
    """The records of a .jsonl file (none if it is absent); None for an unreadable line.
    Raises RunDirError when a line other than the last is not UTF-8 (a torn write only
    ever cuts the last one): the file is not a record the lab wrote."""
    if not path.exists():
        return
    decode = _DECODE
    with path.open("rb") as f:
        line = f.readline()
        number = 0
        while line:
            number += 1
            following = f.readline()
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                if following:
                    raise RunDirError(f"{path}: line {number} is not text") from None
                text = ""
                yield None  # the torn tail
            line = following
            if not text.strip():
                continue
            try:
                rec = decode(text)
            except msgspec.DecodeError:
                yield None
                continue
            yield rec if isinstance(rec, dict) else None


_DECODE = msgspec.json.Decoder().decode  # strict JSON, several times json.loads' speed
