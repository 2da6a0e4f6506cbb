"""The in-memory Raft log: entries after a snapshot offset, with the paper's log queries.

Indices are 1-based as in the paper; index 0 (term 0) is the empty prefix every log shares.
After compaction the log keeps `snapshot_index`/`snapshot_term` as its new "index 0", so
term_at() still answers for the snapshot point and None for anything before it.
"""

from __future__ import annotations

from collections.abc import Sequence

from protocols.raft.messages import Entry


class RaftLog:
    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.snapshot_index = 0
        self.snapshot_term = 0

    # -- queries ---------------------------------------------------------------------------

    @property
    def first_index(self) -> int:
        """The first index still held as an entry (compacted ones are in the snapshot)."""
        return self.snapshot_index + 1

    @property
    def last_index(self) -> int:
        return self.snapshot_index + len(self.entries)

    @property
    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.snapshot_term

    def term_at(self, index: int) -> int | None:
        """The term of the entry at `index`; None when compacted away or beyond the end."""
        if index == self.snapshot_index:
            return self.snapshot_term
        if index < self.snapshot_index or index > self.last_index:
            return None
        return self.entries[index - self.snapshot_index - 1].term

    def entry(self, index: int) -> Entry:
        if not self.first_index <= index <= self.last_index:
            raise IndexError(f"no entry {index} (held: {self.first_index}..{self.last_index})")
        return self.entries[index - self.snapshot_index - 1]

    def slice(self, lo: int, max_count: int) -> list[Entry]:
        """Up to `max_count` entries from index `lo` (which must not be compacted)."""
        start = lo - self.snapshot_index - 1
        if start < 0:
            raise IndexError(f"entry {lo} is compacted (snapshot at {self.snapshot_index})")
        return self.entries[start : start + max_count]

    def matches(self, index: int, term: int) -> bool:
        """Figure 2's consistency check: does our log hold an entry at index with term?"""
        return self.term_at(index) == term

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Section 5.4.1: a candidate's log is at least as up to date as ours when its last
        term is higher, or equal with an index at least as large."""
        if last_term != self.last_term:
            return last_term > self.last_term
        return last_index >= self.last_index

    def find_conflict(self, entries: Sequence[Entry]) -> int:
        """The index of the first entry we lack or hold with another term; 0 if none."""
        for e in entries:
            if self.term_at(e.index) != e.term:
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The largest index <= `index` whose term is <= `term`, with that term.

        Entries between it and `index` all have larger terms, so they cannot match a log
        whose entry at `index` has `term`: the leader can skip them in one step. A
        compacted index is returned with term 0 (unknown: it may match)."""
        while index > 0:
            ours = self.term_at(index)
            if ours is None:
                return index, 0
            if ours <= term:
                return index, ours
            index -= 1
        return 0, 0

    def last_command_at_or_before(self, index: int) -> int:
        """The highest index <= `index` holding a command (skipping a new leader's empty
        entries), which is what a state machine reports as applied; the snapshot point
        counts as one."""
        index = min(index, self.last_index)
        while index > self.snapshot_index and self.entry(index).command is None:
            index -= 1
        return index

    # -- changes ---------------------------------------------------------------------------

    def append(self, entries: Sequence[Entry]) -> None:
        """Put `entries` at entries[0].index, truncating whatever was there and after it.

        Entries at or below the snapshot point are already in the snapshot: skipped."""
        entries = [e for e in entries if e.index > self.snapshot_index]
        if not entries:
            return
        first = entries[0].index
        if first > self.last_index + 1:
            raise IndexError(f"gap: appending at {first} after last index {self.last_index}")
        del self.entries[first - self.snapshot_index - 1 :]
        self.entries.extend(entries)

    def compact(self, index: int, term: int) -> None:
        """Drop entries up to `index`, now covered by a snapshot taken there (section 7).

        If our entry at `index` has another term (or is missing), the snapshot comes from a
        log ours diverges from: everything we hold is replaced by it."""
        if index <= self.snapshot_index:
            return
        if self.term_at(index) == term:
            del self.entries[: index - self.snapshot_index]
        else:
            self.entries = []
        self.snapshot_index = index
        self.snapshot_term = term
