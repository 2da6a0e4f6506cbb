"""The write-ahead log: append-only checksummed records, one fsync per batch.

Record layout: 4-byte little-endian payload length, 4-byte CRC32 of the payload, payload.
Recovery reads records until the first one that is short or fails its checksum. If
nothing valid follows it, that is a torn tail from a crash mid-write: the file is
truncated there and the good prefix returned (what was fsynced before a kill always comes
back, what was half-written never does). If a valid record follows the bad one, the disk
corrupted something that had been written whole: that is not a crash, and the node must
not come back as if it had a log it does not have (Alagappan et al., "Protocol-Aware
Recovery for Consensus-Based Storage", FAST 2018). `WAL.open` then either refuses
(WALCorrupt, naming the file and offset; the file is left as it is), or, for a protocol
that repairs from its peers, keeps the prefix, moves the damaged file aside as evidence
(`wal.log.corrupt`) and leaves a `wal.damaged` marker that stays, across restarts, until
the protocol says it was repaired (`WAL.repaired`).

`corrupt()` is the disk fault that makes this happen on purpose: a flipped bit in a
record already written, or the newest fsynced records lost (which no checksum can see).

The disk fault lives here because this is where a slow disk hurts: `fsync_latency` is added
to every fsync, and `stall_until` (true time) blocks the next fsync until then, as a
degraded volume does. Both are real blocking waits in the replica's only thread.

A SIGKILL loses nothing the process wrote: the page cache survives it. A power loss loses
what was not fsynced. So that the lab can do that to a real process, the WAL reports after
every fsync how much of it is durable, in a sidecar file (`<wal>.synced`: the WAL's inode
and length, 16 bytes, overwritten in place); `cut_to_synced` truncates a killed node's WAL
back to it. Everything a node acknowledged was covered by the report (it is written after
the fsync returns and before the batch's messages leave); records written without an
fsync (`append(sync=False)`) are not.
"""

from __future__ import annotations

import os
import random
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from nodes.process import true_now

_HEADER = struct.Struct("<II")
_SYNCED = struct.Struct("<QQ")  # (inode, durable length) of the WAL file
MAX_RECORD = 64 * 1024 * 1024  # a length above this is garbage, not a record
DAMAGED = "wal.damaged"  # beside the WAL while its node has not been repaired
CORRUPT_MODES = ("flip", "lose")


@dataclass(frozen=True)
class Corruption:
    """A bad record with valid records after it."""

    path: Path
    offset: int  # where the bad record starts
    record: int  # its number (0-based) among the records
    after: int  # valid records found after it

    def describe(self) -> str:
        return (f"{self.path}: record {self.record} at offset {self.offset} is corrupt and "
                f"{self.after} valid records follow it (not a torn tail)")  # fmt: skip


class WALCorrupt(Exception):
    def __init__(self, corruption: Corruption) -> None:
        super().__init__(corruption.describe())
        self.corruption = corruption


class WAL:
    def __init__(self, path: Path, fsync: bool = True) -> None:
        self.path = path
        self.fsync = fsync  # off only for benchmarks that compare with fsync-less systems
        self.fsync_latency = 0.0
        self.stall_until = 0.0
        self.fsyncs = 0
        self.bytes_written = 0
        self.last_fsync_ms = 0.0
        self.truncated_bytes = 0  # torn tail cut off at the last recovery
        self.corruption: Corruption | None = None  # found at this recovery
        # While damaged: the valid records found after the corrupt one (read again from
        # the evidence at every start). Not a log (what lay between is lost), but what
        # they say the node had written: how far its log went, which terms it saw.
        self.tail: list[bytes] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        self.size = os.fstat(self._fd).st_size  # bytes in the file, durable or not
        self._synced_fd = os.open(synced_path(path), os.O_RDWR | os.O_CREAT, 0o600)

    @classmethod
    def open(cls, path: Path, fsync: bool = True, repair: bool = False) -> tuple[WAL, list[bytes]]:
        """Open (creating if needed) and recover: returns the WAL and the good payloads.

        Corruption raises WALCorrupt, unless `repair` (the protocol repairs from its
        peers): then the prefix before the bad record is what comes back, and `damaged`
        is true until `repaired()`. What to keep is `recover`'s decision; this is its
        carrying out on files (the simulator carries it out on its disk image)."""
        found = recover(path.read_bytes() if path.exists() else b"", path, repair)
        good_end = found.good_end
        evidence = path.with_name(path.name + ".corrupt")
        if found.corruption is not None:
            os.replace(path, evidence)
            _write_atomically(path, found.payloads)
            _write_atomically(path.with_name(DAMAGED), [found.corruption.describe().encode()])
            good_end = path.stat().st_size
        wal = cls(path, fsync)
        wal.corruption = found.corruption
        if found.corruption is not None:
            wal.tail = found.tail
        elif wal.damaged and evidence.exists():  # damaged at an earlier start, not repaired
            wal.tail = recover(evidence.read_bytes(), evidence, repair=True).tail
        size = os.fstat(wal._fd).st_size
        if size > good_end:
            wal.truncated_bytes = size - good_end
            os.ftruncate(wal._fd, good_end)
            os.fsync(wal._fd)
        wal.size = good_end
        wal._report_synced()  # what recovery kept was on disk before this process started
        return wal, found.payloads

    @property
    def damaged(self) -> bool:
        """Recovered from a corrupt log and not repaired yet (this start or an earlier)."""
        return self.path.with_name(DAMAGED).exists()

    def repaired(self) -> None:
        """The protocol holds again what it may have lost: drop the marker, durably."""
        marker = self.path.with_name(DAMAGED)
        if marker.exists():
            marker.unlink()
            _fsync_dir(self.path.parent)

    def append(self, payloads: list[bytes], sync: bool = True) -> None:
        """Write every payload, then fsync once: the batch is durable when this returns.
        With `sync` False only the write happens; the next fsync (of any later append)
        covers these records too, as the file is append-only."""
        if not payloads:
            return
        buf = bytearray()
        for p in payloads:
            buf += _HEADER.pack(len(p), zlib.crc32(p))
            buf += p
        view = memoryview(buf)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self.bytes_written += len(buf)
        self.size += len(buf)
        if sync:
            self.sync()

    def sync(self) -> None:
        start = time.perf_counter()
        stall = self.stall_until - true_now()
        if stall > 0:
            time.sleep(stall)  # the injected stall: the volume is not answering
        if self.fsync:
            os.fsync(self._fd)
        if self.fsync_latency > 0:
            time.sleep(self.fsync_latency)  # the injected slow disk
        self.fsyncs += 1
        self.last_fsync_ms = (time.perf_counter() - start) * 1000
        self._report_synced()

    def _report_synced(self) -> None:
        """Tell a power loss what survives it: the file's inode and durable length."""
        ino = os.fstat(self._fd).st_ino
        os.pwrite(self._synced_fd, _SYNCED.pack(ino, self.size), 0)

    def rewrite(self, payloads: list[bytes]) -> None:
        """Atomically replace the log with `payloads` (compaction after a snapshot)."""
        _write_atomically(self.path, payloads)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND, 0o600)
        self.size = os.fstat(self._fd).st_size
        self._report_synced()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            os.close(self._synced_fd)
            self._fd = -1


def synced_path(path: Path) -> Path:
    return path.with_name(path.name + ".synced")


def cut_to_synced(path: Path) -> int:
    """A power loss, after the fact: truncate the WAL at `path` (its process is dead) to
    the length its last fsync made durable; returns the bytes cut. Nothing is cut when no
    report exists or it names another file (a compaction's rename came after it, and the
    new file was fsynced before the rename)."""
    try:
        raw = synced_path(path).read_bytes()
        st = path.stat()
    except FileNotFoundError:
        return 0
    if len(raw) < _SYNCED.size:
        return 0
    ino, length = _SYNCED.unpack_from(raw)
    if ino != st.st_ino or st.st_size <= length:
        return 0
    os.truncate(path, length)
    return st.st_size - length


def encode_records(payloads: list[bytes]) -> bytes:
    """The bytes of a log holding `payloads`, as `append` writes them."""
    buf = bytearray()
    for p in payloads:
        buf += _HEADER.pack(len(p), zlib.crc32(p))
        buf += p
    return bytes(buf)


def _fsync_dir(path: Path) -> None:
    dfd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dfd)  # a rename or unlink is durable only with its directory
    finally:
        os.close(dfd)


def _write_atomically(path: Path, payloads: list[bytes]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(encode_records(payloads))
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _record_at(data: bytes, pos: int) -> int | None:
    """Where the valid record starting at `pos` ends, or None."""
    if pos + _HEADER.size > len(data):
        return None
    length, crc = _HEADER.unpack_from(data, pos)
    end = pos + _HEADER.size + length
    if length > MAX_RECORD or end > len(data):
        return None
    if zlib.crc32(data[pos + _HEADER.size : end]) != crc:
        return None
    return end


def _valid_after(data: bytes, bad: int) -> int:
    """How many valid records follow the bad record at `bad`: resynchronised after its
    own length when that still fits (a flipped payload bit), else byte by byte."""
    length, _ = _HEADER.unpack_from(data, bad)
    starts = []
    skip = bad + _HEADER.size + length
    if length <= MAX_RECORD and skip <= len(data):
        starts.append(skip)
    starts.extend(range(bad + 1, len(data) - _HEADER.size + 1))
    for start in starts:
        if start >= len(data) or _record_at(data, start) is None:
            continue
        count, pos = 0, start
        while (end := _record_at(data, pos)) is not None:
            count, pos = count + 1, end
        # A tail that parses to its very end is a log, not a coincidence of garbage.
        if pos == len(data) or count >= 2:
            return count
    return 0


def read_records(path: Path) -> tuple[list[bytes], int, Corruption | None]:
    """The payloads of the valid prefix of a WAL file, where that prefix ends, and what
    is corrupt when a bad record is followed by valid ones (None for a clean log or a
    torn tail)."""
    return parse_records(path.read_bytes(), path)


def parse_records(data: bytes, path: Path) -> tuple[list[bytes], int, Corruption | None]:
    """`read_records` of a log's bytes (`path` only names it in the corruption)."""
    out: list[bytes] = []
    pos = 0
    while pos + _HEADER.size <= len(data):
        end = _record_at(data, pos)
        if end is None:
            after = _valid_after(data, pos)
            if after:
                return out, pos, Corruption(path, pos, len(out), after)
            break
        out.append(data[pos + _HEADER.size : end])
        pos = end
    return out, pos, None


@dataclass(frozen=True)
class Recovery:
    """What a log's bytes give back at a start (`recover`)."""

    payloads: list[bytes]  # the valid prefix: the log the node comes back with
    good_end: int  # where that prefix ends (a torn tail after it is cut)
    corruption: Corruption | None
    tail: list[bytes]  # with a corruption: the valid records after the bad one (evidence)


def recover(data: bytes, path: Path, repair: bool) -> Recovery:
    """The recovery decision, one place for the replica and the simulator: the valid
    prefix; a torn tail is cut; a bad record followed by valid ones raises WALCorrupt,
    unless `repair` (the protocol repairs from its peers), when the prefix comes back with
    the corruption and the records after it."""
    payloads, good_end, corruption = parse_records(data, path)
    if corruption is None:
        return Recovery(payloads, good_end, None, [])
    if not repair:
        raise WALCorrupt(corruption)
    return Recovery(payloads, good_end, corruption, _records_after(data, good_end))


def _records_after(data: bytes, bad: int) -> list[bytes]:
    """The valid records that follow the corrupt one at `bad` (found as `_valid_after`
    finds them)."""
    starts = [bad + _HEADER.size + _HEADER.unpack_from(data, bad)[0], *range(bad + 1, len(data))]
    for start in starts:
        out, pos = [], start
        while (end := _record_at(data, pos)) is not None:
            out.append(data[pos + _HEADER.size : end])
            pos = end
        if out and (pos == len(data) or len(out) >= 2):
            return out
    return []


def corrupt(path: Path, mode: str, rng: random.Random) -> str:
    """The disk fault on a WAL file that nobody has open (`damage` does it); says what
    was done."""
    data = path.read_bytes() if path.exists() else b""
    damaged, what = damage(data, mode, rng)
    if damaged != data:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, damaged)
            os.fsync(fd)
        finally:
            os.close(fd)
    return f"{path.name}: {what}"


def damage(log: bytes, mode: str, rng: random.Random) -> tuple[bytes, str]:
    """The disk fault on a log's bytes: the damaged bytes, and what was done.

    flip: one bit of a record in the middle of the log (a latent sector error, a
    misdirected write), which recovery detects; lose: the newer half of the records,
    fsynced or not (a disk that acknowledged writes it never made durable), which no
    checksum can detect. Either needs at least two records."""
    if mode not in CORRUPT_MODES:
        raise ValueError(f"corrupt mode must be one of {', '.join(CORRUPT_MODES)}, got {mode!r}")
    data = bytearray(log)
    bounds = []
    pos = 0
    while (end := _record_at(log, pos)) is not None:
        bounds.append((pos, end))
        pos = end
    if len(bounds) < 2:
        return log, f"{len(bounds)} records, nothing to corrupt"
    if mode == "flip":
        k = len(bounds) // 2
        start, end = bounds[k]
        at = rng.randrange(start + _HEADER.size, end) if end > start + _HEADER.size else start
        data[at] ^= 1 << rng.randrange(8)
        what = f"flipped a bit at offset {at} (record {k} of {len(bounds)})"
    else:
        keep = len(bounds) // 2
        cut = bounds[keep][0]
        what = f"lost records {keep}..{len(bounds) - 1} of {len(bounds)} ({len(data) - cut} bytes)"
        del data[cut:]
    return bytes(data), what
