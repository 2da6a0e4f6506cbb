"""Safety checkers: split brain, divergence, duplicate apply, lost write, linearizability,
lease overlap, zombie write, duplicate order (the broker's at most once).

Pure: they read records (dicts as in events.jsonl and history.jsonl) and never touch a
socket or a clock. `CheckerSet` runs them all, live or via `check_run_dir` offline.
"""

from labctl.checkers.base import KINDS, CheckerConfig, Violation
from labctl.checkers.history import Operation, pair_history
from labctl.checkers.linearizability import check_history, check_operations
from labctl.checkers.runner import CheckerSet, RunDirError, check_run_dir

__all__ = [
    "KINDS",
    "CheckerConfig",
    "CheckerSet",
    "Operation",
    "RunDirError",
    "Violation",
    "check_history",
    "check_operations",
    "check_run_dir",
    "pair_history",
]
