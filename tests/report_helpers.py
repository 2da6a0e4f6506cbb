"""A run record built from known records, for the report's tests and its benchmark.

`write_run(path, seconds, ops, frames)` writes what a lab writes (lab.json, events.jsonl,
history.jsonl, summary.json and trace.bin through faults/trace.py's writer) for a naive
3-node run: r0 leads term 1, a partition cuts r0 off from 20% to 60% of the run and r1
promotes itself (a split-brain violation), r2 is paused and later killed and restarted,
r0's clock is skewed, r0 holds leases. The frames are real encoded protocol messages, so
their types decode as a lab's would.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import msgspec

from faults import trace as tr
from protocols.base import ClientReply, ClientRequest, Command
from protocols.naive import Append, Heartbeat, HeartbeatAck

T0 = 1000.0  # true time of lab.ready
NODES = ["r0", "r1", "r2"]


def write_run(root: Path, seconds: float = 10.0, ops: int = 600, frames: int = 6000) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    cut0, cut1 = T0 + 0.2 * seconds, T0 + 0.6 * seconds
    promote = cut0 + 0.3
    events: list[dict] = [
        {"t": T0 - 0.5, "src": "router", "kind": "router.ready"},
        {"t": T0 - 0.1, "src": "r0", "kind": "became_leader", "term": 1, "how": "initial"},
        {"t": T0, "src": "supervisor", "kind": "lab.ready", "nodes": NODES, "protocol": "naive"},
        {"t": T0 + 0.05, "src": "supervisor", "kind": "workload.start",
         "workload": {"kind": "orders", "rate": ops / seconds, "clients": 3, "target": "any",
                      "reads": "log"}},
        {"t": T0 + 0.1 * seconds, "src": "supervisor", "kind": "fault", "fault": "clock",
         "node": "r0", "describe": "clock r0 offset=+0.007s drift=+0"},
        {"t": cut0, "src": "supervisor", "kind": "fault", "fault": "partition", "id": 1,
         "describe": "partition r0 <-> r1,r2", "from": ["r0"], "to": ["r1", "r2"]},
        {"t": promote, "src": "r1", "kind": "became_leader", "term": 1, "how": "self-promoted"},
        {"t": promote + 0.001, "src": "supervisor", "kind": "violation",
         "violation": "split-brain", "at": promote, "nodes": ["r0", "r1"],
         "detail": "two leaders in term 1: r0, r1",
         "evidence": {"term": 1, "leaders": {"r0": {"t": T0 - 0.1, "how": "initial"},
                                             "r1": {"t": promote, "how": "self-promoted"}}}},
        {"t": cut1, "src": "supervisor", "kind": "fault.healed", "fault": "heal",
         "healed": ["partition r0 <-> r1,r2"]},
        {"t": T0 + 0.7 * seconds, "src": "supervisor", "kind": "fault", "fault": "pause",
         "node": "r2", "describe": "pause r2 for 1.5s"},
        {"t": T0 + 0.7 * seconds + 1.5, "src": "supervisor", "kind": "fault.healed",
         "fault": "pause r2", "node": "r2"},
        {"t": T0 + 0.85 * seconds, "src": "supervisor", "kind": "fault", "fault": "kill",
         "node": "r2", "describe": "kill r2"},
        {"t": T0 + 0.9 * seconds, "src": "supervisor", "kind": "fault", "fault": "restart",
         "node": "r2", "describe": "restart r2"},
    ]  # fmt: skip
    index = {n: 0 for n in NODES}
    t = T0
    while t < T0 + seconds:
        for n in NODES:
            index[n] += rng.randrange(0, 3)
            leader = n == "r0" or (n == "r1" and t >= promote)
            lease = t + 0.3 if n == "r0" else None
            events.append({"t": t, "src": n, "kind": "node.status",
                           "role": "leader" if leader else "follower", "term": 1,
                           "commit_index": index[n], "applied_index": index[n],
                           "lease_expiry_true": lease})  # fmt: skip
        t += 0.1
    events.append({"t": T0 + seconds, "src": "supervisor", "kind": "lab.stopped"})
    events.sort(key=lambda e: e["t"])
    enc = msgspec.json.Encoder()
    (root / "events.jsonl").write_bytes(b"".join(enc.encode(e) + b"\n" for e in events))
    lines = []
    for i in range(ops):
        t_inv = T0 + seconds * i / ops
        lat = rng.uniform(1, 30) * (8 if cut0 <= t_inv < cut1 else 1)
        kind = rng.choices(["ok", "fail", "info"], [90, 6, 4])[0]
        rid = f"c{i % 3}:{i}"
        lines.append({"t": t_inv, "process": f"c{i % 3}", "type": "invoke", "request_id": rid,
                      "op": "order"})  # fmt: skip
        lines.append({"t": t_inv + lat / 1000, "process": f"c{i % 3}", "type": kind,
                      "request_id": rid, "op": "order", "latency_ms": lat})  # fmt: skip
    lines.sort(key=lambda h: h["t"])
    (root / "history.jsonl").write_bytes(b"".join(enc.encode(h) + b"\n" for h in lines))
    config = {"protocol": "naive", "nodes": 3, "seed": 42, "options": {}, "fencing": False,
              "name": "synthetic", "replicas": NODES}  # fmt: skip
    (root / "lab.json").write_text(json.dumps({"config": config, "started_wall": 0.0}))
    (root / "summary.json").write_text(json.dumps({
        "scenario": "synthetic", "protocol": "naive", "verdict": "pass",
        "expectations": [{"expect": "found split-brain", "met": True}],
    }))  # fmt: skip
    _write_trace(root, seconds, frames, cut0, cut1, rng)
    return root


def _write_trace(root: Path, seconds: float, frames: int, cut0: float, cut1: float,
                 rng: random.Random) -> None:  # fmt: skip
    mp = msgspec.msgpack.Encoder()
    cmd = Command(request_id="c0:1", client="c0", op="put", key="k", value="v")
    heads = {
        "hb": mp.encode(Heartbeat(term=1, log_len=10))[: tr.HEAD_BYTES],
        "ack": mp.encode(HeartbeatAck(log_len=10))[: tr.HEAD_BYTES],
        "append": mp.encode(Append(term=1, entries=[]))[: tr.HEAD_BYTES],
        "req": mp.encode(ClientRequest(command=cmd))[: tr.HEAD_BYTES],
        "reply": mp.encode(ClientReply(request_id="c0:1", status="ok", node="r0"))[: tr.HEAD_BYTES],
    }
    writer = tr.TraceWriter(tr.trace_path(root), cap=max(frames, 1), start=T0 - 0.5)
    links = {(a, b): writer.link(a, b) for a in [*NODES, "c0"] for b in [*NODES, "c0"] if a != b}
    pairs = [(a, b) for a, b in links if "c0" not in (a, b)]
    for i in range(frames):
        t = T0 + seconds * i / frames
        if i % 4 == 3:
            a, b = ("c0", rng.choice(NODES)) if i % 8 == 3 else (rng.choice(NODES), "c0")
            head = heads["req"] if a == "c0" else heads["reply"]
        else:
            a, b = pairs[i % len(pairs)]
            head = heads["hb"] if a == "r0" else heads["ack"]
            if i % 7 == 0:
                head = heads["append"]
        cut = cut0 <= t < cut1 and "r0" in (a, b) and "c0" not in (a, b)
        fate = tr.DROPPED if cut else tr.DELIVERED
        writer.add(t, None if cut else 0.0, links[(a, b)], fate, 60, head)
        if i % 5000 == 4999:
            writer.flush()
    writer.close()
