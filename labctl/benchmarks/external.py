"""Benchmark of the external-node adapter: the latency it adds per hop over the router's.

    python -m labctl.benchmarks.external [--pings N]        (prints one JSON object)

A hop between two built-in replicas is DEALER -> router -> DEALER. Between two external
replicas it is program -> stdout pipe -> adapter -> router -> adapter -> stdin pipe ->
program. Both are measured as ping-pong round trips from this process through the same
router, in interleaved blocks so both see the same machine noise:

- routed: to an echo DEALER on the router (labctl/benchmarks/router.py's echo helper);
- external: to an adapter whose program is sed rewriting src/dest (a C program that
  costs a few microseconds, so what is measured is the adapter and its pipes; no `$`
  address in its script, which would make sed read a line ahead). Its stdout is made
  line-buffered with coreutils' stdbuf, not with `sed -u`, which also reads its input
  one byte per read(): 130 syscalls for a 118-byte line, about 28 us a round trip here
  (the old program, measured alone: `--program sed-u`).

Each round trip crosses the adapter twice (in and out), which together make one
program-to-program hop's extra cost (the sending adapter's way out plus the receiving
one's way in): added per hop = external RTT - routed RTT, at p50 and p99. The machine's
load average is recorded with the figures (the box is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import msgspec
import psutil
import zmq

from labctl.benchmarks.router import BLOCK, _endpoint, _helper, _kill, _percentile, _router
from nodes import auth
from nodes.process import decode_dict

_SCRIPT = [
    "-e", r'1s/.*/{"src":"n0","dest":"lab","body":{"type":"init_ok","in_reply_to":1}}/',
    "-e", r's/"src":"c0","dest":"n0"/"src":"n0","dest":"c0"/',
]  # fmt: skip
PROGRAMS = {
    "sed": ["stdbuf", "-oL", "sed", *_SCRIPT],
    "sed-u": ["sed", "-u", *_SCRIPT],  # the program before: byte-by-byte reads
}


def _adapter(
    ctx: zmq.Context, router: str, tmp: str, pull: zmq.Socket, program: list[str]
) -> subprocess.Popen[bytes]:
    """The adapter, once ready. `pull` stays bound while it runs, as a lab's supervisor
    does (a closed one would have the adapter's telemetry reconnect every 100 ms)."""
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nodes.external.adapter", "--id", "r0", "--replicas", "r0",
         "--command", json.dumps(program), "--router", router,
         "--telemetry", f"tcp://127.0.0.1:{port}", "--logs", tmp,
         "--data-dir", os.path.join(tmp, "r0"),
         "--max-rate", "1000000", "--parent-pid", str(os.getpid())],
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            if not pull.poll(max(1, int((deadline - time.monotonic()) * 1000))):
                raise RuntimeError("the adapter did not report ready in 10 s")
            if decode_dict(pull.recv()).get("kind") == "node.ready":
                return proc
    except BaseException:
        _kill(proc)
        raise


REPLY_TIMEOUT_MS = 10_000


def _rtts(sock: zmq.Socket, frames: list[bytes], n: int) -> list[float]:
    """`n` ping-pong round trips; a ping not answered in 10 s ends the benchmark with the
    path's name (one run once hung here with no sign of which side held the ping)."""
    out = []
    clock = time.perf_counter
    for i in range(n):
        t0 = clock()
        sock.send_multipart(frames)
        if not sock.poll(REPLY_TIMEOUT_MS):
            raise RuntimeError(f"no reply through {frames[0].decode()!r} in "
                               f"{REPLY_TIMEOUT_MS / 1000:g} s (ping {i + 1} of {n})")  # fmt: skip
        sock.recv_multipart()
        out.append(clock() - t0)
    return out


def _cpu_seconds(proc: psutil.Process) -> float:
    """CPU time of all the process's threads: from /proc's schedstat (nanoseconds) where
    there is one, else psutil's (clock ticks: 10 ms, coarse against a 500-ping block)."""
    try:
        total = 0
        for tid in os.listdir(f"/proc/{proc.pid}/task"):
            with open(f"/proc/{proc.pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        t = proc.cpu_times()
        return t.user + t.system


def measure(
    ctx: zmq.Context, router: str, pings: int, tmp: str, program: str = "sed"
) -> dict[str, Any]:
    echo = _helper("echo", router)
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    pull.setsockopt(zmq.RCVHWM, 0)  # its events queue here, unread, a few per second
    adapter = _adapter(ctx, router, tmp, pull, PROGRAMS[program])
    try:
        assert echo.stdout is not None
        if not echo.stdout.readline().strip():
            raise RuntimeError("echo process did not start")
        sock = _endpoint(ctx, router, b"c0")
        line = msgspec.json.encode(
            {"src": "c0", "dest": "n0", "body": {"type": "echo", "msg_id": 1, "echo": "x" * 50}}
        )
        routed_frames = [b"echo", line]
        external_frames = [b"r0", line]
        _rtts(sock, routed_frames, 200)  # warm both paths
        _rtts(sock, external_frames, 200)
        r: list[float] = []
        e: list[float] = []
        cpu = echo_cpu = 0.0
        me, them = psutil.Process(adapter.pid), psutil.Process(echo.pid)
        while len(r) < pings:
            n = min(BLOCK, pings - len(r))
            c0 = _cpu_seconds(them)
            r += _rtts(sock, routed_frames, n)
            echo_cpu += _cpu_seconds(them) - c0
            c0 = _cpu_seconds(me)
            e += _rtts(sock, external_frames, n)
            cpu += _cpu_seconds(me) - c0
        sock.close()
    finally:
        _kill(adapter)
        _kill(echo)
        pull.close()
    r.sort()
    e.sort()
    us = 1e6
    return {
        "pings": pings,
        "program": program,
        "payload_bytes": len(line),
        "routed_rtt_p50_us": round(_percentile(r, 0.5) * us, 1),
        "external_rtt_p50_us": round(_percentile(e, 0.5) * us, 1),
        "added_per_hop_p50_us": round((_percentile(e, 0.5) - _percentile(r, 0.5)) * us, 1),
        "added_per_hop_p99_us": round((_percentile(e, 0.99) - _percentile(r, 0.99)) * us, 1),
        # The adapter's CPU per round trip (one message in, one out): steadier than
        # latency on a busy machine.
        "adapter_cpu_us_per_rtt": round(cpu / len(e) * us, 1),
        # The echo endpoint's (Python and pyzmq, as a built-in replica's): the floor.
        "echo_cpu_us_per_rtt": round(echo_cpu / len(r) * us, 1),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }


def run(pings: int = 5000, program: str = "sed") -> dict[str, Any]:
    ctx = zmq.Context()
    try:
        with tempfile.TemporaryDirectory(prefix="labctl-bench-external-") as tmp, \
                _router(ctx) as endpoints:  # fmt: skip
            return measure(ctx, endpoints["data"], pings, tmp, program)
    finally:
        auth.destroy(ctx)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pings", type=int, default=5000)
    p.add_argument("--program", choices=sorted(PROGRAMS), default="sed",
                   help="the adapter's program (sed-u: the one measured before)")
    args = p.parse_args()
    print(json.dumps(run(args.pings, args.program)))


if __name__ == "__main__":
    main()
