"""What primary-backup sends and what it writes to its WAL: tagged msgspec Structs.

The lab's codecs know them from the protocol class (`messages`, `records`); a peer's
message is decoded into one of these or counted and dropped before the protocol sees it.
"""

from __future__ import annotations

import msgspec

from protocols.base import Command


class Entry(msgspec.Struct, frozen=True):
    index: int  # the log position, 1, 2, 3...
    view: int  # the view whose primary appended it
    command: Command | None  # None: a new primary's no-op, which commits what came before


# -- peer messages ------------------------------------------------------------------------


class Prepare(msgspec.Struct, frozen=True, tag=True):
    """Primary -> backup: entries after (prev_index, prev_view), and the commit index.
    With no entries it is the heartbeat."""

    view: int
    prev_index: int
    prev_view: int
    entries: list[Entry]
    commit: int


class PrepareOk(msgspec.Struct, frozen=True, tag=True):
    """Backup -> primary, sent only once what it acknowledges is on disk. ok: its log
    matches the primary's up to `index`; not ok: retry from `index` + 1."""

    view: int
    index: int
    ok: bool


class DoViewChange(msgspec.Struct, frozen=True, tag=True):
    """Any replica -> the primary of `view`: I moved to `view`, and my log ends at
    (last_view, last_index). A majority of these, none ahead of its own log, and the new
    primary starts the view."""

    view: int
    last_view: int
    last_index: int


class Snapshot(msgspec.Struct, frozen=True, tag=True):
    """Primary -> a backup that needs entries it compacted away: the state machine image
    at `index` (the entry there is of `snap_view`)."""

    view: int
    index: int
    snap_view: int
    data: bytes


MESSAGES = (Prepare, PrepareOk, DoViewChange, Snapshot)

# -- WAL records --------------------------------------------------------------------------


class ViewRecord(msgspec.Struct, frozen=True, tag=True):
    """The view this replica promised: it never acts in an older one again."""

    view: int


class EntriesRecord(msgspec.Struct, frozen=True, tag=True):
    """Log entries; on replay an entry at index i replaces whatever was at i and
    everything after it (how a backup's conflicting suffix is overwritten durably)."""

    entries: list[Entry]


class SnapshotRecord(msgspec.Struct, frozen=True, tag=True):
    """A state machine image at `index`: the log before it is gone."""

    index: int
    view: int
    data: bytes


RECORDS = (ViewRecord, EntriesRecord, SnapshotRecord)
