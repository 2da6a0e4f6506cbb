"""Raft's safety properties (paper Figure 3) checked over a set of live nodes.

Used by the tests after every step of random schedules, and usable by a simulator. Each
function returns the violations it found as sentences; an empty list means it holds.
Election safety and state machine safety are protocol-independent and checked by
protocols/simnet.py as a run goes; these are the log-level ones only Raft can state.
"""

from __future__ import annotations

from collections.abc import Mapping

from protocols.raft.core import RaftProtocol


def log_matching(nodes: Mapping[str, RaftProtocol]) -> list[str]:
    """Log Matching: if two logs hold an entry with the same index and term, the logs are
    identical in all entries up through that index (compared where both still hold them)."""
    problems = []
    ids = sorted(nodes)
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            la, lb = nodes[a].log, nodes[b].log
            lo = max(la.snapshot_index, lb.snapshot_index) + 1
            hi = min(la.last_index, lb.last_index)
            # The highest index where the terms agree; everything below it must match.
            top = next((k for k in range(hi, lo - 1, -1) if la.term_at(k) == lb.term_at(k)), 0)
            for k in range(lo, top + 1):
                if la.entry(k) != lb.entry(k):
                    problems.append(
                        f"log matching: {a} and {b} agree on the term at {top} but differ at"
                        f" {k}: {la.entry(k)} vs {lb.entry(k)}"
                    )
                    break
    return problems


def committed_agreement(nodes: Mapping[str, RaftProtocol]) -> list[str]:
    """No two nodes hold different entries at an index both consider committed."""
    problems = []
    ids = sorted(nodes)
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            na, nb = nodes[a], nodes[b]
            lo = max(na.log.snapshot_index, nb.log.snapshot_index) + 1
            for k in range(lo, min(na.commit, nb.commit) + 1):
                if na.log.entry(k) != nb.log.entry(k):
                    problems.append(
                        f"committed entries differ at {k}: {a} has {na.log.entry(k)},"
                        f" {b} has {nb.log.entry(k)}"
                    )
                    break
    return problems


def leader_completeness(
    nodes: Mapping[str, RaftProtocol], committed: Mapping[int, tuple[int, int]]
) -> list[str]:
    """Leader Completeness (section 5.4): an entry committed in term T is in the log of
    every leader of a term above T. `committed` maps an index to (the entry's term, a term
    T at or after the one it was committed in); entries below a snapshot are not checked."""
    problems = []
    for name, node in nodes.items():
        if node.role != "leader":
            continue
        for index, (term, since) in committed.items():
            if node.term <= since or index <= node.log.snapshot_index:
                continue
            if node.log.term_at(index) != term:
                problems.append(
                    f"leader {name} (term {node.term}) lacks entry {index} of term {term},"
                    f" committed by term {since} (has term {node.log.term_at(index)})"
                )
                break
    return problems


def check_all(
    nodes: Mapping[str, RaftProtocol], committed: Mapping[int, tuple[int, int]]
) -> list[str]:
    return log_matching(nodes) + committed_agreement(nodes) + leader_completeness(nodes, committed)
