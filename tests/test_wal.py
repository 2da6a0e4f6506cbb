"""The WAL: what was fsynced comes back after a crash; a torn tail never does."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from nodes.wal import WAL, WALCorrupt, corrupt, read_records


def test_records_come_back_in_order(tmp_path: Path) -> None:
    wal, recovered = WAL.open(tmp_path / "wal.log")
    assert recovered == []
    wal.append([b"one", b"two"])
    wal.append([b"three"])
    wal.close()
    _, recovered = WAL.open(tmp_path / "wal.log")
    assert recovered == [b"one", b"two", b"three"]


def test_a_lazy_append_costs_no_fsync_and_the_next_fsync_covers_it(tmp_path: Path) -> None:
    wal, _ = WAL.open(tmp_path / "wal.log")
    wal.append([b"vote"])
    wal.append([b"commit"], sync=False)  # an EPaxos Commit record: no fsync of its own
    assert wal.fsyncs == 1
    wal.append([b"next vote"])
    assert wal.fsyncs == 2
    wal.close()
    _, recovered = WAL.open(tmp_path / "wal.log")
    assert recovered == [b"vote", b"commit", b"next vote"]


def test_a_torn_tail_is_cut_off_and_later_appends_survive(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    wal, _ = WAL.open(path)
    wal.append([b"a" * 100, b"b" * 100])
    wal.close()
    good = path.stat().st_size
    with open(path, "ab") as f:  # a crash mid-write: a header and half a payload
        f.write(b"\x64\x00\x00\x00\x00\x00\x00\x00" + b"c" * 40)
    wal, recovered = WAL.open(path)
    assert recovered == [b"a" * 100, b"b" * 100]
    assert wal.truncated_bytes == 48 and path.stat().st_size == good
    wal.append([b"d"])
    wal.close()
    assert read_records(path)[0] == [b"a" * 100, b"b" * 100, b"d"]


def _flip_in_second_record(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[8 + 5 + 8 + 2] ^= 0xFF  # flip a byte inside "second"
    path.write_bytes(bytes(data))


def test_a_bad_record_followed_by_valid_ones_is_corruption_not_a_torn_tail(
    tmp_path: Path,
) -> None:
    path = tmp_path / "wal.log"
    wal, _ = WAL.open(path)
    wal.append([b"first", b"second", b"third"])
    wal.close()
    _flip_in_second_record(path)
    size = path.stat().st_size
    with pytest.raises(WALCorrupt) as caught:
        WAL.open(path)
    c = caught.value.corruption
    assert (c.record, c.offset, c.after) == (1, 13, 1)
    assert str(path) in str(caught.value) and "offset 13" in str(caught.value)
    assert path.stat().st_size == size  # refused, and left as it was for whoever looks


def test_a_repairing_open_keeps_the_prefix_the_evidence_and_a_lasting_marker(
    tmp_path: Path,
) -> None:
    path = tmp_path / "wal.log"
    wal, _ = WAL.open(path)
    wal.append([b"first", b"second", b"third"])
    wal.close()
    _flip_in_second_record(path)
    wal, recovered = WAL.open(path, repair=True)
    assert recovered == [b"first"] and wal.damaged and wal.tail == [b"third"]
    assert path.with_name("wal.log.corrupt").exists()
    wal.append([b"later"])
    wal.close()
    # A restart before the repair is still damaged, and still knows what followed.
    wal, recovered = WAL.open(path, repair=True)
    assert recovered == [b"first", b"later"] and wal.damaged and wal.tail == [b"third"]
    wal.repaired()
    wal.close()
    wal, _ = WAL.open(path, repair=True)
    assert not wal.damaged and wal.tail == []


def test_the_corrupt_fault_flips_a_detectable_bit_or_loses_undetectably(tmp_path: Path) -> None:
    rng = random.Random(3)
    for mode, detected in (("flip", True), ("lose", False)):
        path = tmp_path / mode / "wal.log"
        wal, _ = WAL.open(path)
        wal.append([f"record {i}".encode() * 5 for i in range(10)])
        wal.close()
        what = corrupt(path, mode, rng)
        assert what.startswith("wal.log: ")
        payloads, _, corruption = read_records(path)
        assert (corruption is not None) == detected
        assert len(payloads) == 5  # the records before the flipped one; the older half


def test_injected_fsync_latency_and_stall_block_the_writer(tmp_path: Path) -> None:
    wal, _ = WAL.open(tmp_path / "wal.log")
    wal.fsync_latency = 0.02
    t0 = time.perf_counter()
    wal.append([b"x"])
    assert time.perf_counter() - t0 >= 0.02
    wal.fsync_latency = 0.0
    wal.stall_until = time.monotonic() + 0.1
    t0 = time.perf_counter()
    wal.append([b"y"])
    assert time.perf_counter() - t0 >= 0.09
    assert wal.fsyncs == 2


def test_rewrite_replaces_the_log_atomically(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    wal, _ = WAL.open(path)
    wal.append([b"old1", b"old2"])
    wal.rewrite([b"snapshot"])
    wal.append([b"new"])
    wal.close()
    assert read_records(path)[0] == [b"snapshot", b"new"]
    assert not os.path.exists(path.with_suffix(".tmp"))
