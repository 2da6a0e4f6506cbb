"""The message trace: one record per frame the network carried, written into the run record.

The fault router writes `<run>/trace.bin` as it forwards (faults/router.py); the simulator
writes the same file with the same records. `labctl report` reads it back to draw the
space-time diagram.

File format: a sequence of chunks, each a 4-byte big-endian length then that many bytes of
msgpack encoding one `Chunk`. A writer appends a chunk every flush (the router: every
250 ms, or sooner when its buffer fills), so a crash loses at most the last flush and a
torn last chunk is ignored by the reader. Chunks carry:

- `links`: the directed links first seen since the previous chunk, `[id, src, dst]`
  (records name a link by id: two names per frame would double the file);
- `types`: likewise the message type names first seen, `[id, name]` (ids from 1);
- `records`: the frames, in the order the writer decided their fate, as one msgpack bin
  of fixed-size little-endian `RECORD`s (`t` f64, `wait` f32 seconds, NaN when it never
  left, `link` u32, `size` u32, `type` u16 id or 0, `fate` u8, then the head as a Pascal
  string: one length byte and HEAD_BYTES bytes). Fixed records are what makes tracing
  cheap: the router packs each frame straight into a preallocated buffer with one
  `struct.pack_into`, no Python object per frame (a tuple per frame, encoded later, cost
  a fifth of the router's CPU per frame; this, a few per cent). Files written before this
  format (a list of `Traced` arrays) still read;
- `not_kept`: cumulative count, per fate, of frames past the cap (the trace is bounded:
  the first `cap` frames are kept, the rest only counted, so the record says exactly how
  much it lacks);
- `start`: the writer's true time when it opened the file (its first chunk only, else 0).
  A restarted router appends to the same file with a new writer, whose first chunk has a
  start again: its link and type ids and not_kept counts begin afresh from there.

The message type is not decoded where the frame passes: the router keeps the first
`HEAD_BYTES` bytes of the payload (`head`) and `describe()` decodes them offline. Every
message on the lab's wire is a msgpack map of a tagged msgspec Struct whose first key is
"type", so the head holds the type and usually the first integer fields (term, view,
ballot). A writer that knows the type (the simulator) puts it in `type` and leaves the
head empty.

Times are the lab's true time (the machine's monotonic clock, `nodes.process.true_now`),
the same clock as events.jsonl, so trace and events line up without conversion.
"""

from __future__ import annotations

import math
import os
import struct
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

FILE_NAME = "trace.bin"
HEAD_BYTES = 48
# Frames kept per run at most (RECORD.size, 72 bytes, each on disk): minutes of a busy
# lab; a benchmark at full throughput fills it and the rest is counted in `not_kept`.
DEFAULT_CAP = 500_000

# What happened to a frame. Codes are what records carry; names are what readers show.
DELIVERED = 0  # forwarded to its destination (after its delay, if the link had one)
DROPPED = 1  # dropped by a rule: a partition (`drop`)
LOST = 2  # dropped by a rule's loss probability
DUPLICATE = 3  # the second copy of a frame a rule duplicated (the first is DELIVERED)
UNROUTABLE = 4  # no endpoint of that name is connected (never was, or it is dead)
OVERFLOW = 5  # the delay queue was full, or the receiver's pipe (a paused process)
ERROR = 6  # any other send failure
FATES = ("delivered", "dropped", "lost", "duplicate", "unroutable", "overflow", "error")
ARRIVED = (DELIVERED, DUPLICATE)  # fates that reach the destination

# One frame on disk: t, wait, link, size, type id, fate, head ('p': a length byte, then at
# most HEAD_BYTES bytes; struct truncates a longer payload itself, so the router hands it
# the whole payload and never slices it).
RECORD = struct.Struct(f"<dfIIHB{HEAD_BYTES + 1}p")
# The same record with wait, type and fate left zero (0.0, no type, DELIVERED): the router's
# fast path packs only what varies, since each argument is a conversion (pad bytes are
# written as zeros, so nothing of an earlier record survives in the buffer).
FAST_RECORD = struct.Struct(f"<d4xII2xx{HEAD_BYTES + 1}p")
assert FAST_RECORD.size == RECORD.size
_FATE_AT = 22  # offset of the fate byte in a record
# Records a writer buffers before it writes a chunk (besides the router's 250 ms timer):
# a few hundred kB, one write, and small enough to stay in the caches the forwarding needs.
FLUSH_RECORDS = 4096
NO_WAIT = math.nan  # `wait` of a frame that never left

_LEN = struct.Struct(">I")
MAX_CHUNK = 256 << 20  # a length above this is a broken file, not a chunk


class Traced(msgspec.Struct, array_like=True, frozen=True):
    """One frame of a file in the format before fixed records (read, never written).
    `wait` is None when it never left."""

    t: float
    wait: float | None
    link: int
    fate: int
    size: int
    head: bytes = b""
    type: str = ""


class Chunk(msgspec.Struct, frozen=True):
    links: list[tuple[int, str, str]] = []
    types: list[tuple[int, str]] = []
    records: bytes | list[Traced] = b""  # RECORDs; a list in files of the older format
    not_kept: dict[str, int] = {}
    start: float = 0.0


class TraceWriter:
    """Appends chunks to a trace file. Not thread-safe; one writer per file.

    `add` records one frame. A hot path packs records into `buf` itself: `reserve(n)`
    makes room for n records and returns the offset to pack the next one at; it packs
    RECORD or FAST_RECORD there and keeps `off` up to date before anyone else adds.
    """

    def __init__(self, path: Path | str, cap: int = DEFAULT_CAP, start: float = 0.0) -> None:
        self.path = Path(path)
        self.cap = max(0, int(cap))
        self.buf = bytearray(FLUSH_RECORDS * RECORD.size)
        self.off = 0  # bytes of buf in use: records not yet written
        self.kept = 0
        self.not_kept = [0] * len(FATES)  # past the cap, per fate; a hot path may add
        self._not_kept_written = list(self.not_kept)  # as of the last chunk
        self._links: dict[tuple[str, str], int] = {}
        self._new_links: list[tuple[int, str, str]] = []
        self._types: dict[str, int] = {}
        self._new_types: list[tuple[int, str]] = []
        self._start = start
        self._encoder = msgspec.msgpack.Encoder()
        self._file = open(self.path, "ab")  # noqa: SIM115 - open for the writer's life

    @property
    def full(self) -> bool:
        return self.kept >= self.cap

    @property
    def pending(self) -> int:
        """Records buffered, not yet written."""
        return self.off // RECORD.size

    def link(self, src: str, dst: str) -> int:
        """The id of link src -> dst, allocated on first use."""
        key = (src, dst)
        lid = self._links.get(key)
        if lid is None:
            lid = self._links[key] = len(self._links)
            self._new_links.append((lid, src, dst))
        return lid

    def reserve(self, n: int) -> int:
        """Room for n more records in `buf` (writing a chunk if needed); the offset of the
        next one."""
        if self.off + n * RECORD.size > len(self.buf):
            if n > FLUSH_RECORDS:
                raise ValueError(f"cannot reserve {n} records, the buffer holds {FLUSH_RECORDS}")
            self.flush()
        return self.off

    def add(self, t: float, wait: float | None, link: int, fate: int, size: int,
            head: bytes = b"", type: str = "") -> None:  # fmt: skip
        """One frame: `wait` None when it never left; `head` the payload's first bytes
        (longer is cut), or `type` when the writer knows it."""
        tid = 0
        if type:
            tid = self._types.get(type, 0)
            if not tid:
                tid = self._types[type] = len(self._types) + 1
                self._new_types.append((tid, type))
        off = self.reserve(1)
        RECORD.pack_into(self.buf, off, t, NO_WAIT if wait is None else wait, link, size,
                         tid, fate, head)  # fmt: skip
        self.off = off + RECORD.size

    def flush(self) -> None:
        """Write what is buffered as one chunk (past the cap: only counted)."""
        used = self.off
        if not used and not self._new_links and not self._new_types and not self._start:
            if self.not_kept == self._not_kept_written:
                return  # else: a hot path counted frames past the cap without records
        self.off = 0
        n = used // RECORD.size
        room = max(self.cap - self.kept, 0)
        if n > room:
            # Count the fates of the records past the cap: one strided slice, no loop here.
            fates = Counter(self.buf[room * RECORD.size + _FATE_AT : used : RECORD.size])
            for fate, count in fates.items():
                self.not_kept[fate if 0 <= fate < len(FATES) else ERROR] += count
            n = room
        self.kept += n
        with memoryview(self.buf) as view:
            body = self._encoder.encode(
                {
                    "links": self._new_links,
                    "types": self._new_types,
                    "records": view[: n * RECORD.size],
                    "not_kept": {FATES[i]: c for i, c in enumerate(self.not_kept) if c},
                    "start": self._start,
                }
            )
        self._new_links = []
        self._new_types = []
        self._start = 0.0
        self._not_kept_written = list(self.not_kept)
        self._file.write(_LEN.pack(len(body)))
        self._file.write(body)
        self._file.flush()

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            self.flush()
        finally:
            self._file.close()


# ------------------------------------------------------------------------------ reading


class Message(msgspec.Struct, frozen=True):
    """One traced frame, resolved for a reader."""

    t_in: float
    t_out: float | None  # None: it never arrived
    src: str
    dst: str
    fate: str
    size: int
    type: str  # "Heartbeat"; a bundle is "Bundle"; "?" when the head does not say
    fields: dict[str, int | bool]  # integer fields the head held, in order (term, view...)
    count: int = 1  # messages in the frame (a Bundle's items)


class Trace(msgspec.Struct):
    messages: list[Message]
    kept: int
    not_kept: dict[str, int]
    start: float
    torn: bool = False  # the last chunk was cut short (the writer died mid-write)

    @property
    def total_not_kept(self) -> int:
        return sum(self.not_kept.values())


def _chunks(path: Path) -> Iterator[bytes | None]:
    """The chunk bodies of a file; None last if the file ends in a torn chunk."""
    data = path.read_bytes()
    pos = 0
    while pos < len(data):
        if pos + 4 > len(data):
            yield None
            return
        (n,) = _LEN.unpack_from(data, pos)
        if n > MAX_CHUNK or pos + 4 + n > len(data):
            yield None
            return
        yield data[pos + 4 : pos + 4 + n]
        pos += 4 + n


def read_trace(path: Path | str, t0: float | None = None, t1: float | None = None) -> Trace:
    """Read a trace file; with t0/t1, only the frames that arrived in [t0, t1].

    A torn last chunk is skipped (`torn`); a chunk that does not decode raises ValueError.
    """
    decoder = msgspec.msgpack.Decoder(Chunk)
    links: dict[int, tuple[str, str]] = {}
    out: list[Message] = []
    kept = 0
    not_kept: dict[str, int] = {}
    start = 0.0
    torn = False
    lo = float("-inf") if t0 is None else t0
    hi = float("inf") if t1 is None else t1
    cache: dict[bytes, tuple[str, dict[str, int | bool], int]] = {}
    base: dict[str, int] = {}
    types: dict[int, str] = {}
    for body in _chunks(Path(path)):
        if body is None:
            torn = True
            break
        try:
            chunk = decoder.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise ValueError(f"{path}: broken trace chunk: {e}") from None
        if chunk.start:
            # A new writer (a restarted router appends to the same file): its ids and its
            # counts start afresh, so the counts so far become a base.
            if start:
                for k, v in not_kept.items():
                    base[k] = base.get(k, 0) + v
                not_kept = {}
            else:
                start = chunk.start
        for lid, src, dst in chunk.links:
            links[lid] = (src, dst)
        types.update(chunk.types)
        not_kept = chunk.not_kept or not_kept
        records = chunk.records
        if isinstance(records, bytes):
            if len(records) % RECORD.size:
                raise ValueError(f"{path}: broken trace chunk: records of {len(records)} bytes")
            kept += len(records) // RECORD.size
            rows: Iterator[tuple[Any, ...]] = RECORD.iter_unpack(records)
        else:  # the older format: wait None for never left, the type by name
            kept += len(records)
            rows = ((r.t, NO_WAIT if r.wait is None else r.wait, r.link, r.size, r.type,
                     r.fate, r.head) for r in records)  # fmt: skip
        for t, wait, lid, size, tid, fate, head in rows:
            if not lo <= t <= hi:
                continue
            src, dst = links.get(lid, ("?", "?"))
            if tid:  # the writer knew the type: an id (a name in the older format)
                mtype, fields, count = types.get(tid, "?") if isinstance(tid, int) else tid, {}, 1
            else:
                got = cache.get(head)
                if got is None:
                    got = cache[head] = describe(head)
                mtype, fields, count = got
            t_out = t + wait if fate in ARRIVED and wait == wait else None  # NaN: never left
            name = FATES[fate] if 0 <= fate < len(FATES) else "error"
            out.append(Message(t, t_out, src, dst, name, size, mtype, fields, count))
    total = dict(base)
    for k, v in not_kept.items():
        total[k] = total.get(k, 0) + v
    return Trace(out, kept, total, start, torn)


# ------------------------------------------------------------- offline decoding of heads


class _Short(Exception):
    """The head ended inside a value."""


def _read(head: bytes, pos: int) -> tuple[Any, int]:
    """One msgpack value at pos: ints, bools, nil, strings and bins are returned; maps and
    arrays return ("map"|"array", length) without their contents; _Short past the end."""
    if pos >= len(head):
        raise _Short
    b = head[pos]
    pos += 1
    if b <= 0x7F:
        return b, pos
    if b >= 0xE0:
        return b - 0x100, pos
    if 0xA0 <= b <= 0xBF:
        return _str(head, pos, b & 0x1F)
    if 0x80 <= b <= 0x8F:
        return ("map", b & 0x0F), pos
    if 0x90 <= b <= 0x9F:
        return ("array", b & 0x0F), pos
    if b == 0xC0:
        return None, pos
    if b in (0xC2, 0xC3):
        return b == 0xC3, pos
    sizes = {0xCC: (1, False), 0xCD: (2, False), 0xCE: (4, False), 0xCF: (8, False),
             0xD0: (1, True), 0xD1: (2, True), 0xD2: (4, True), 0xD3: (8, True)}  # fmt: skip
    if b in sizes:
        n, signed = sizes[b]
        if pos + n > len(head):
            raise _Short
        return int.from_bytes(head[pos : pos + n], "big", signed=signed), pos + n
    if b in (0xD9, 0xC4):  # str8, bin8
        if pos >= len(head):
            raise _Short
        n = head[pos]
        if b == 0xC4:
            return ("bin", n), pos + 1
        return _str(head, pos + 1, n)
    if b in (0xDA, 0xC5, 0xDC, 0xDE):  # str16, bin16, array16, map16
        if pos + 2 > len(head):
            raise _Short
        n = int.from_bytes(head[pos : pos + 2], "big")
        kind = {0xDA: "str", 0xC5: "bin", 0xDC: "array", 0xDE: "map"}[b]
        if kind == "str":
            return _str(head, pos + 2, n)
        return (kind, n), pos + 2
    if b in (0xDB, 0xC6, 0xDD, 0xDF):  # 32-bit lengths
        if pos + 4 > len(head):
            raise _Short
        n = int.from_bytes(head[pos : pos + 4], "big")
        kind = {0xDB: "str", 0xC6: "bin", 0xDD: "array", 0xDF: "map"}[b]
        if kind == "str":
            return _str(head, pos + 4, n)
        return (kind, n), pos + 4
    if b in (0xCA, 0xCB):  # floats: skip them
        n = 4 if b == 0xCA else 8
        if pos + n > len(head):
            raise _Short
        return ("float", 0), pos + n
    return ("other", 0), pos


def _str(head: bytes, pos: int, n: int) -> tuple[str, int]:
    if pos + n > len(head):
        raise _Short
    return head[pos : pos + n].decode("utf-8", "replace"), pos + n


def describe(head: bytes) -> tuple[str, dict[str, int | bool], int]:
    """(type, the integer and bool fields the head holds, messages in the frame).

    A Bundle is named by its first item's type ("ClientReply") with the item count; a head
    that is not a tagged map (or too short to say) is "?".
    """
    try:
        value, pos = _read(head, 0)
        if not (isinstance(value, tuple) and value[0] == "map"):
            return "?", {}, 1
        pairs = value[1]
        key, pos = _read(head, pos)
        if key != "type":
            return "?", {}, 1
        mtype, pos = _read(head, pos)
        if not isinstance(mtype, str):
            return "?", {}, 1
    except _Short:
        return "?", {}, 1
    fields: dict[str, int | bool] = {}
    try:
        for _ in range(pairs - 1):
            key, pos = _read(head, pos)
            value, pos = _read(head, pos)
            if not isinstance(key, str):
                break
            if mtype == "Bundle" and key == "items" and isinstance(value, tuple):
                count = value[1]
                item, pos = _read(head, pos)
                if isinstance(item, tuple) and item[0] == "bin":
                    inner, inner_fields, _ = describe(head[pos:])
                    return inner, inner_fields, count
                return "Bundle", {}, count
            if isinstance(value, (bool, int)):
                fields[key] = value
            elif isinstance(value, tuple):
                break  # a nested map or array: what follows is its contents, not fields
    except _Short:
        pass
    return mtype, fields, 1


def trace_path(run_dir: Path | str) -> Path:
    return Path(run_dir) / FILE_NAME


def exists(run_dir: Path | str) -> bool:
    path = trace_path(run_dir)
    return path.exists() and os.path.getsize(path) > 0
