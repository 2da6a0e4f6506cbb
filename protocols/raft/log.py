"""The in-memory Raft log: entries after an offset, with the paper's log queries.

Indices are 1-based as in the paper; index 0 (term 0) is the empty prefix every log shares.
After compaction the log keeps `offset`/`offset_term` as its new "index 0", so term_at()
still answers there and None for anything before it. The snapshot may cover more than the
offset: a leader keeps some entries its snapshot already holds (etcd's catch-up entries),
so a follower a little behind is sent entries, not the whole state machine.
"""

from __future__ import annotations

from collections.abc import Sequence

from protocols.raft.messages import Entry


class RaftLog:
    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.offset = 0  # entries[0] is at offset + 1
        self.offset_term = 0
        self.snapshot_index = 0  # what the snapshot covers (>= offset)
        self.snapshot_term = 0

    # -- queries ---------------------------------------------------------------------------

    @property
    def first_index(self) -> int:
        """The first index still held as an entry (compacted ones are in the snapshot)."""
        return self.offset + 1

    @property
    def last_index(self) -> int:
        return self.offset + len(self.entries)

    @property
    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.offset_term

    def term_at(self, index: int) -> int | None:
        """The term of the entry at `index`; None when compacted away or beyond the end."""
        if index == self.offset:
            return self.offset_term
        if index < self.offset or index > self.last_index:
            return None
        return self.entries[index - self.offset - 1].term

    def entry(self, index: int) -> Entry:
        if not self.first_index <= index <= self.last_index:
            raise IndexError(f"no entry {index} (held: {self.first_index}..{self.last_index})")
        return self.entries[index - self.offset - 1]

    def slice(self, lo: int, max_count: int) -> list[Entry]:
        """Up to `max_count` entries from index `lo` (which must not be compacted)."""
        start = lo - self.offset - 1
        if start < 0:
            raise IndexError(f"entry {lo} is compacted (log starts after {self.offset})")
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
        del self.entries[first - self.offset - 1 :]
        self.entries.extend(entries)

    def compact(self, index: int, term: int, keep: int = 0) -> None:
        """A snapshot taken at `index` now covers the log up to there (section 7): drop
        entries up to it, except the last `keep` of them (catch-up entries for followers
        slightly behind).

        If our entry at `index` has another term (or is missing), the snapshot comes from a
        log ours diverges from: everything we hold is replaced by it."""
        if index <= self.snapshot_index:
            return
        if self.term_at(index) == term:
            new_offset = max(self.offset, index - keep)
            new_term = self.term_at(new_offset)
            assert new_term is not None
            del self.entries[: new_offset - self.offset]
            self.offset, self.offset_term = new_offset, new_term
        else:
            self.entries = []
            self.offset, self.offset_term = index, term
        self.snapshot_index = index
        self.snapshot_term = term
