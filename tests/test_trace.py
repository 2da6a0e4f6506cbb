"""The message trace: the real router process writes every frame's fate, and it reads back.

The router is started as the supervisor starts it (with --trace), endpoints are real
DEALERs, payloads are real encoded protocol messages, so the type decoded offline is the
one a report shows.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import zmq

from faults import trace as tr
from nodes.wire import Codec
from protocols.base import Bundle, ClientReply, ClientRequest, Command
from protocols.pbft.messages import PrePrepare
from protocols.raft.messages import AppendEntries, Heartbeat, RequestVote
from tests.conftest import wait_until
from tests.test_router import (
    TIMEOUT,
    Router,
    _env,
    _kill_group,
    _router_cmd,
    _wait_event,
    barrier,
    endpoint,
    recv,
)

ENC = msgspec.msgpack.Encoder()


def start_traced(ctx: zmq.Context, path: Path, cap: int | None = None) -> Router:
    pull = ctx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    args = ["--trace", str(path)] + (["--trace-cap", str(cap)] if cap is not None else [])
    proc = subprocess.Popen(
        [*_router_cmd(f"tcp://127.0.0.1:{port}"), "--parent-pid", str(os.getpid()), *args],
        env=_env(),
        start_new_session=True,
    )
    try:
        ready = _wait_event(pull, "router.ready")["data"]
    except BaseException:
        _kill_group(proc)
        raise
    return Router(proc, ready["pid"], ready["data"], ready["control"], pull, ctx)


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def stop(router: Router) -> None:
    """SIGTERM: the router writes its last chunk and exits 0."""
    try:
        router.proc.send_signal(signal.SIGTERM)
        assert router.proc.wait(TIMEOUT) == 0
    finally:
        _kill_group(router.proc)


def test_every_fate_is_recorded_with_its_type(ctx: zmq.Context, tmp_path: Path) -> None:
    path = tmp_path / "trace.bin"
    router = start_traced(ctx, path)
    try:
        a, b = endpoint(router, "r0"), endpoint(router, "r1")
        hb = ENC.encode(Heartbeat(term=4, commit=9, round=2))
        vote = ENC.encode(RequestVote(term=5, last_index=10, last_term=4))
        for _ in range(10):
            a.send_multipart([b"r1", hb])
        barrier(a)  # control and data are two sockets: a rule must not overtake frames
        router.set_links(("r0", "r1", {"drop": True}))
        for _ in range(5):
            a.send_multipart([b"r1", vote])
        barrier(a)
        router.set_links(("r0", "r1", {"loss": 1.0}))
        for _ in range(4):
            a.send_multipart([b"r1", hb])
        barrier(a)
        router.set_links(("r0", "r1", {"duplicate": 1.0}))
        for _ in range(2):
            a.send_multipart([b"r1", vote])
        barrier(a)
        router.set_links(("r0", "r1", {"delay": 0.05}))
        for _ in range(3):
            a.send_multipart([b"r1", hb])
        barrier(a)
        router.set_links()
        for _ in range(3):
            a.send_multipart([b"ghost", vote])
        barrier(a)
        got = [recv(b)[1] for _ in range(10 + 4 + 3)]
        assert len(got) == 17
    finally:
        stop(router)
    trace = tr.read_trace(path)
    assert not trace.torn and trace.total_not_kept == 0
    seen = Counter(
        (m.src, m.dst, m.fate, m.type)
        for m in trace.messages
        if m.type != "?"  # the endpoints' hellos and barriers are not protocol messages
    )
    assert seen == {
        ("r0", "r1", "delivered", "Heartbeat"): 10 + 3,
        ("r0", "r1", "dropped", "RequestVote"): 5,
        ("r0", "r1", "lost", "Heartbeat"): 4,
        ("r0", "r1", "delivered", "RequestVote"): 2,
        ("r0", "r1", "duplicate", "RequestVote"): 2,
        ("r0", "ghost", "unroutable", "RequestVote"): 3,
    }
    # The delayed link's three heartbeats (the last delivered) waited out their 50 ms.
    # Nothing is asserted of the others' wait: a busy machine can hold any frame that long.
    beats = [m for m in trace.messages if m.type == "Heartbeat" and m.fate == "delivered"]
    assert all(m.t_out is not None and m.t_out - m.t_in >= 0.045 for m in beats[-3:])
    never = [m for m in trace.messages if m.fate in ("dropped", "lost", "unroutable")]
    assert never and all(m.t_out is None for m in never)
    first = next(m for m in trace.messages if m.type == "Heartbeat")
    assert first.fields == {"term": 4, "commit": 9, "round": 2} and first.size == len(hb)
    times = [m.t_in for m in trace.messages]
    assert trace.start <= times[0] and max(times) - min(times) < 60


def test_cap_keeps_the_first_frames_and_counts_the_rest(ctx: zmq.Context, tmp_path: Path) -> None:
    path = tmp_path / "trace.bin"
    router = start_traced(ctx, path, cap=20)
    try:
        a, b = endpoint(router, "r0"), endpoint(router, "r1")
        for i in range(100):
            a.send_multipart([b"r1", i.to_bytes(4, "big")])
        assert [recv(b)[1] for _ in range(100)] == [i.to_bytes(4, "big") for i in range(100)]
        stats = router.ctl("stats")
    finally:
        stop(router)
    trace = tr.read_trace(path)
    assert trace.kept == len(trace.messages) == 20
    # 100 data frames plus two hellos; stats came before the last flush could count them.
    assert trace.not_kept["delivered"] == 100 + 2 - 20
    assert stats["trace_kept"] + stats["trace_not_kept"] <= 102


def test_frames_past_a_full_trace_are_counted_not_lost(ctx: zmq.Context, tmp_path: Path) -> None:
    """Once a flush has filled the cap, the router only tallies fast-path frames; the
    tally still reaches the file, in a chunk of counts alone."""
    path = tmp_path / "trace.bin"
    router = start_traced(ctx, path, cap=20)
    try:
        a, b = endpoint(router, "r0"), endpoint(router, "r1")
        for i in range(50):
            a.send_multipart([b"r1", i.to_bytes(4, "big")])
        assert len([recv(b) for _ in range(50)]) == 50
        # The 250 ms flush timer fills the cap; from then on frames are only counted.
        wait_until(lambda: router.ctl("stats")["trace_kept"] == 20, timeout=10)
        for i in range(150):
            a.send_multipart([b"r1", i.to_bytes(4, "big")])
        assert len([recv(b) for _ in range(150)]) == 150
    finally:
        stop(router)
    trace = tr.read_trace(path)
    assert trace.kept == len(trace.messages) == 20
    assert trace.not_kept["delivered"] == 200 + 2 - 20


def test_torn_last_chunk_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "trace.bin"
    w = tr.TraceWriter(path, start=1.0)
    link = w.link("r0", "r1")
    w.add(1.5, 0.0, link, tr.DELIVERED, 10, type="Heartbeat")
    w.close()
    with open(path, "ab") as f:
        f.write(b"\x00\x00\x10\x00half a chunk")
    trace = tr.read_trace(path)
    assert trace.torn and [(m.src, m.type, m.t_out) for m in trace.messages] == [
        ("r0", "Heartbeat", 1.5)
    ]
    (tmp_path / "junk.bin").write_bytes(b"\x00\x00\x00\x03abc")
    with pytest.raises(ValueError, match="broken trace chunk"):
        tr.read_trace(tmp_path / "junk.bin")


def test_heads_name_the_types_of_every_kind_of_frame() -> None:
    codec = Codec()
    cmd = Command(request_id="c0-1", client="c0", op="put", key="k", value="v")
    reply = ENC.encode(ClientReply(request_id="c0-1", status="ok", node="r0", term=3))
    cases = {
        ENC.encode(ClientRequest(command=cmd)): ("ClientRequest", 1),
        codec.bundle([reply, reply, reply]): ("ClientReply", 3),
        ENC.encode(Bundle([ENC.encode(ClientRequest(command=cmd))] * 2)): ("ClientRequest", 2),
        ENC.encode(PrePrepare(view=2, seq=7, digest=b"d" * 32, sender="r0")): ("PrePrepare", 1),
        ENC.encode(AppendEntries(term=1, prev_index=2, prev_term=1)): ("AppendEntries", 1),
        b"not msgpack": ("?", 1),
        b"": ("?", 1),
    }
    for payload, (mtype, count) in cases.items():
        got = tr.describe(payload[: tr.HEAD_BYTES])
        assert (got[0], got[2]) == (mtype, count), payload
    assert tr.describe(ENC.encode(PrePrepare(view=2, seq=7, digest=b"", sender="r0")))[1] == {
        "view": 2,
        "seq": 7,
    }


def test_a_restarted_writer_appends_with_its_own_ids_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "trace.bin"
    first = tr.TraceWriter(path, cap=1, start=1.0)
    a = first.link("r0", "r1")
    first.add(1.1, 0.0, a, tr.DELIVERED, 10, type="Heartbeat")
    first.add(1.2, 0.0, a, tr.DELIVERED, 10, type="Heartbeat")  # past the cap
    first.close()
    second = tr.TraceWriter(path, cap=1, start=2.0)  # as the restarted router opens it
    b = second.link("r2", "r0")  # id 0 again, another link
    second.add(2.1, None, b, tr.DROPPED, 10, type="RequestVote")
    second.add(2.2, None, b, tr.DROPPED, 10, type="RequestVote")
    second.close()
    trace = tr.read_trace(path)
    assert [(m.src, m.dst, m.fate) for m in trace.messages] == [
        ("r0", "r1", "delivered"), ("r2", "r0", "dropped")
    ]  # fmt: skip
    assert trace.not_kept == {"delivered": 1, "dropped": 1} and trace.start == 1.0


def test_fixed_records_round_trip_past_a_full_buffer_and_the_cap(tmp_path: Path) -> None:
    """What a writer adds reads back field for field, across the chunks a full buffer
    forces, with the frames past the cap counted by fate."""
    path = tmp_path / "trace.bin"
    n = tr.FLUSH_RECORDS * 2 + 10
    cap = tr.FLUSH_RECORDS + 100
    w = tr.TraceWriter(path, cap=cap, start=1.0)
    links = [w.link("r0", "r1"), w.link("r1", "r0")]
    hb = ENC.encode(Heartbeat(term=4, commit=9, round=2))
    big = hb + b"x" * 200  # longer than the head: cut to HEAD_BYTES
    want = []
    for i in range(n):
        dropped = i % 3 == 0
        fate = tr.DROPPED if dropped else tr.DELIVERED
        mtype = "RequestVote" if i % 5 == 0 else ""
        w.add(1 + i * 1e-4, None if dropped else 0.25, links[i % 2], fate, len(big),
              b"" if mtype else big, mtype)  # fmt: skip
        want.append((["r0", "r1"][i % 2], tr.FATES[fate], mtype or "Heartbeat", not dropped))
    assert w.pending < tr.FLUSH_RECORDS  # full buffers were written as they filled
    w.close()
    trace = tr.read_trace(path)
    assert not trace.torn and trace.kept == len(trace.messages) == cap
    got = [(m.src, m.fate, m.type, m.t_out is not None) for m in trace.messages]
    assert got == want[:cap]
    past = Counter(fate for _, fate, _, _ in want[cap:])
    assert trace.not_kept == dict(past) and trace.total_not_kept == n - cap
    m = trace.messages[1]
    assert m.fields == {"term": 4, "commit": 9, "round": 2} and m.size == len(big)
    assert m.t_out is not None and abs(m.t_out - m.t_in - 0.25) < 1e-6  # f32 wait
    # A window reads only the frames that arrived in it.
    part = tr.read_trace(path, 1.0 + 10e-4, 1.0 + 19e-4).messages
    assert len(part) == 10 and part[0].t_in == trace.messages[10].t_in


def test_a_file_of_the_older_format_still_reads(tmp_path: Path) -> None:
    """Runs recorded before fixed records (a list of Traced arrays per chunk) still draw."""
    path = tmp_path / "trace.bin"
    hb = ENC.encode(Heartbeat(term=4, commit=9, round=2))[: tr.HEAD_BYTES]
    records = [[1.5, 0.0, 0, tr.DELIVERED, 30, hb, ""],
               [1.6, None, 0, tr.DROPPED, 12, b"", "RequestVote"]]  # fmt: skip
    body = ENC.encode({"links": [[0, "r0", "r1"]], "start": 1.0, "records": records})
    path.write_bytes(len(body).to_bytes(4, "big") + body)
    trace = tr.read_trace(path)
    assert [(m.src, m.dst, m.fate, m.type, m.t_out) for m in trace.messages] == [
        ("r0", "r1", "delivered", "Heartbeat", 1.5), ("r0", "r1", "dropped", "RequestVote", None)
    ]  # fmt: skip
    assert trace.messages[0].fields == {"term": 4, "commit": 9, "round": 2}
