"""The write-ahead log: append-only checksummed records, one fsync per batch.

Record layout: 4-byte little-endian payload length, 4-byte CRC32 of the payload, payload.
Recovery reads records until the first one that is short or fails its checksum (a torn
tail from a crash mid-write), truncates the file there and returns the good prefix: what
was fsynced before a kill always comes back, what was half-written never does.

The disk fault lives here because this is where a slow disk hurts: `fsync_latency` is added
to every fsync, and `stall_until` (true time) blocks the next fsync until then, as a
degraded volume does. Both are real blocking waits in the replica's only thread.
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from pathlib import Path

from nodes.process import true_now

_HEADER = struct.Struct("<II")
MAX_RECORD = 64 * 1024 * 1024  # a length above this is garbage, not a record


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
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)

    @classmethod
    def open(cls, path: Path, fsync: bool = True) -> tuple[WAL, list[bytes]]:
        """Open (creating if needed) and recover: returns the WAL and the good payloads."""
        payloads, good_end = read_records(path) if path.exists() else ([], 0)
        wal = cls(path, fsync)
        size = os.fstat(wal._fd).st_size
        if size > good_end:
            wal.truncated_bytes = size - good_end
            os.ftruncate(wal._fd, good_end)
            os.fsync(wal._fd)
        return wal, payloads

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

    def rewrite(self, payloads: list[bytes]) -> None:
        """Atomically replace the log with `payloads` (compaction after a snapshot)."""
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            buf = bytearray()
            for p in payloads:
                buf += _HEADER.pack(len(p), zlib.crc32(p))
                buf += p
            os.write(fd, buf)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)  # the rename itself must be durable
        finally:
            os.close(dfd)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND, 0o600)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def read_records(path: Path) -> tuple[list[bytes], int]:
    """The payloads of the valid prefix of a WAL file, and where that prefix ends."""
    data = path.read_bytes()
    out: list[bytes] = []
    pos = 0
    while pos + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, pos)
        start = pos + _HEADER.size
        end = start + length
        if length > MAX_RECORD or end > len(data):
            break
        payload = data[start:end]
        if zlib.crc32(payload) != crc:
            break
        out.append(payload)
        pos = end
    return out, pos
