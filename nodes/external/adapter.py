"""The adapter: one per external replica, the user's program on one side, the router on
the other.

    python -m nodes.external.adapter --id r0 --replicas r0,r1,r2 --command '["python3", "x.py"]' ...

It starts the program (program.py), joins the fault router as the replica (a DEALER whose
identity is r0), sends `init` and waits for `init_ok`, then carries lines: each line the
program prints is decoded just far enough to route it on `dest` (n1 -> r1, clients and
services by name) and the bytes go to the router unchanged; each message from the router
is checked (the transport's sender is the truth about `src`) and written to the program's
stdin. Messages that arrive before `init_ok` wait (Maelstrom promises init first).

Everything the program prints is data: a line that is not a message, a message to a node
that does not exist, more lines per second than `--max-rate`, a line longer than
MAX_LINE, are dropped and counted, and the first of each kind is reported (an
`external.error` event naming the node, with the last lines of its stderr). A program
that exits, or never answers init, ends the adapter with code 3 after the same report:
the supervisor then shows the replica as stopped. The program's role report (names.py)
becomes status and `became_leader` events, as a built-in protocol's would.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
from pathlib import Path
from typing import Any

import msgspec
import zmq

from nodes import auth
from nodes.external import names
from nodes.external.names import LAB, Envelope, Head
from nodes.external.program import (
    ProgramError,
    clock_problem,
    spawn,
    stderr_tail,
    write_faketime,
)
from nodes.external.topology import TOPOLOGY_FILE
from nodes.nodeproc import node_arguments, refuse_with, serve
from nodes.process import (
    Telemetry,
    control_socket,
    data_endpoint,
    error,
    ok,
    parent_alive,
    serve_control,
    true_now,
)
from protocols.base import events as ev

_NOBLOCK = int(zmq.NOBLOCK)
_POLLIN = int(zmq.POLLIN)
_EPOLLIN, _EPOLLOUT = select.EPOLLIN, select.EPOLLOUT
_SNDMORE = int(zmq.SNDMORE)
_EVENTS = int(zmq.EVENTS)
_RCVMORE = int(zmq.RCVMORE)
MAX_LINE = 1 << 20  # a longer line is dropped: nobody's message is a megabyte
MAX_PENDING = 10_000  # messages held back until init_ok
MAX_STDIN = 32 << 20  # bytes waiting for the program to read them; more are dropped
STATUS_INTERVAL = 0.1
IDLE_WAIT = 0.1  # seconds the loop sleeps at most (the exit and parent checks need turns)
DRAIN_BATCH = 512  # router messages per turn: the program's lines get their turn too
REPORT_EVERY = 1.0  # a recurring problem is reported at most this often (and counted always)
INIT_ID = 1
MAX_LINKS = 256  # peers with counters of their own in status; the rest share "*"

_decode = msgspec.json.Decoder(Envelope).decode
_decode_head = msgspec.json.Decoder(Head).decode
_encode = msgspec.json.Encoder().encode


class TokenBucket:
    """At most `rate` lines per second on average, bursts of `rate`."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.t = now

    def take(self, now: float) -> bool:
        if self.tokens < 1.0:
            self.tokens = min(self.rate, self.tokens + (now - self.t) * self.rate)
            self.t = now
            if self.tokens < 1.0:
                return False
        self.tokens -= 1.0
        return True


class Adapter:
    def __init__(self, args: argparse.Namespace) -> None:
        self.id: str = args.id
        self.me = names.to_program(self.id)
        self.replicas: list[str] = args.replicas.split(",")
        self.parent_pid: int | None = args.parent_pid
        self.argv: list[str] = json.loads(args.command)
        self.command = " ".join(self.argv)
        logs = Path(args.logs)
        self.stderr_path = logs / f"{self.id}.stderr.log"
        self.init_timeout: float = args.init_timeout
        self.topology_file = Path(args.data_dir).parent / TOPOLOGY_FILE
        self.clock_problem = clock_problem(self.argv)
        self.faketime = Path(args.data_dir) / "faketime.rc" if not self.clock_problem else None
        if self.faketime is not None:
            self.faketime.parent.mkdir(parents=True, exist_ok=True)
        # The program first: the pre-exec hook must run before zmq starts its threads.
        self.proc = spawn(self.argv, self.stderr_path, self.faketime)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.out_fd = self.proc.stdout.fileno()
        self.in_fd = self.proc.stdin.fileno()
        os.set_blocking(self.out_fd, False)
        os.set_blocking(self.in_fd, False)
        self.ctx = zmq.Context()
        self.zap = auth.serve(self.ctx, auth.env_secret())  # the lab's endpoints only
        self.telemetry = Telemetry(self.ctx, args.telemetry, self.id)
        self.data = data_endpoint(self.ctx, args.router, self.id)
        self.control, self.control_endpoint = control_socket(self.ctx)
        self.bucket = TokenBucket(args.max_rate, true_now())
        self.partial = b""
        self.skipping = False  # inside an over-long line: drop up to its newline
        self.wbuf = bytearray()  # bytes for the program's stdin
        self.writing = False  # stdin registered for POLLOUT
        self.pending: list[bytes] = []
        self.check_data = True  # the data socket may hold messages its FD will not announce
        self.src_names: dict[bytes, str] = {}  # router identity -> the program's name for it
        self.ready = False
        self.running = True
        self.exit_code = 0
        self.routes: dict[str, bytes] = {}  # a program's dest -> router identity
        self.counters: dict[str, int] = {"in": 0, "out": 0, "malformed": 0}
        self.links_in: dict[str, int] = {}
        self.links_out: dict[str, int] = {}
        self.problems: dict[str, int] = {}
        self.reported: dict[str, float] = {}
        self.last_error: str | None = None
        self.role: str | None = None
        self.term: int | None = None
        self.leader: str | None = None
        self.offset = 0.0
        self.drift = 0.0
        self.topology_ok = False
        self.next_msg_id = INIT_ID + 1
        self.status_dirty = True
        self.last_status: dict[str, Any] | None = None
        self.last_status_t = 0.0
        # One epoll over the pipes and the zmq sockets' FDs: zmq.Poller's zmq_poll makes
        # six or so syscalls a call (a first pass, and ZMQ_EVENTS of every socket before
        # and after the wait); this wait is one.
        self.epoll = select.epoll()
        self.data_fd: int = self.data.getsockopt(zmq.FD)
        self.control_fd: int = self.control.getsockopt(zmq.FD)

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> int:
        init = {"type": "init", "msg_id": INIT_ID, "node_id": self.me,
                "node_ids": [names.to_program(r) for r in self.replicas]}  # fmt: skip
        self.to_program(_encode({"src": LAB, "dest": self.me, "body": init}))
        deadline = true_now() + self.init_timeout
        poll = self.epoll.poll
        out_fd, data_fd, control_fd = self.out_fd, self.data_fd, self.control_fd
        self.epoll.register(out_fd, _EPOLLIN)
        self.epoll.register(data_fd, _EPOLLIN)
        self.epoll.register(control_fd, _EPOLLIN)
        next_check = true_now() + 0.2
        while self.running:
            # A zmq socket's FD says "look at ZMQ_EVENTS", once: after a drain that ended on
            # no POLLIN (or a recv that ended on EAGAIN) it is armed again; a send may take
            # the signal of a message that came meanwhile (check_data is set then).
            events = poll(0 if self.check_data else IDLE_WAIT)
            for fd, _ in events:
                if fd == out_fd:
                    self.read_program()
                elif fd == data_fd:
                    self.drain_router()
                elif fd == control_fd:
                    serve_control(self.control, self.handle_control, self.counters)
                else:
                    self.flush_stdin()
            if self.check_data:
                self.drain_router()
            if not events:  # a quiet turn: the control socket's signal may have gone too
                if self.control.getsockopt(_EVENTS) & _POLLIN:
                    serve_control(self.control, self.handle_control, self.counters)
            now = true_now()
            if not self.ready and now > deadline and self.running:
                self.fail(f"did not answer init within {self.init_timeout:g}s")
            if now >= next_check:
                next_check = now + 0.2
                if not parent_alive(self.parent_pid):
                    break
                if self.running and self.proc.poll() is not None:
                    self.program_exited()
            self.maybe_publish_status(now)
        self.close()
        return self.exit_code

    # -- from the program ----------------------------------------------------------------

    def read_program(self) -> None:
        for _ in range(16):  # at most 1 MiB per turn: the router side gets its turn too
            try:
                chunk = os.read(self.out_fd, 1 << 16)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self.epoll.unregister(self.out_fd)
                if self.running:
                    self.program_exited()
                return
            lines = chunk.split(b"\n")
            if self.partial:
                lines[0] = self.partial + lines[0]
            self.partial = lines.pop()
            now = true_now()
            for line in lines:
                if self.skipping:
                    self.skipping = False  # the tail of an over-long line
                    continue
                self.on_line(line, now)
            if len(self.partial) > MAX_LINE:
                self.problem("oversized", f"printed a line longer than {MAX_LINE} bytes")
                self.partial = b""
                self.skipping = True
            if len(chunk) < 1 << 16:
                return  # a short read drained the pipe: no second read to learn it

    def on_line(self, line: bytes, now: float) -> None:
        if not line or line.isspace():
            return
        if not self.bucket.take(now):  # before decoding: a flood costs little
            self.problem("flood", f"prints more than {self.bucket.rate:g} messages/s "
                         "(the excess is dropped)")  # fmt: skip
            return
        try:
            env = _decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.problem("bad_line", "printed a line that is not a Maelstrom message "
                         "(a JSON object with src, dest and body)", line)  # fmt: skip
            return
        dest = env.dest
        route = self.routes.get(dest)
        if route is None:
            if dest == LAB:
                self.on_lab(env, line)
                return
            lab_name = names.to_lab(dest, len(self.replicas))
            if lab_name is None:
                self.problem("unknown_dest", f"sent a message to {dest!r}, a node that does "
                             "not exist", line)  # fmt: skip
                return
            route = lab_name.encode()
            if len(self.routes) < MAX_LINKS:  # cli-* names come and go: a bounded cache
                self.routes[dest] = route
        if env.src != self.me and not names.is_client(env.src):
            self.problem("bad_src", f"sent a message with src {env.src!r}, not {self.me!r} "
                         "(rewritten)", line)  # fmt: skip
            line = _encode(Envelope(self.me, dest, env.body))
        if dest == self.me:
            # Maelstrom delivers a message a node sends itself (programs do: the Gossip
            # Glomers broadcasts that loop over node_ids). No link, so no fault, applies.
            self.counters["to_self"] = self.counters.get("to_self", 0) + 1
            self.deliver(line)
            return
        self.check_data = True  # a send may take the wake-up of a message coming in
        try:
            # Frame by frame: send_multipart's per-call checks cost more than the frames.
            self.data.send(route, _NOBLOCK | _SNDMORE)
            self.data.send(line, _NOBLOCK)
        except zmq.Again:
            self.problem("send_dropped", "the router did not take a message (dropped)")
            return
        self.counters["out"] += 1
        key = dest if dest in self.links_out or len(self.links_out) < MAX_LINKS else "*"
        self.links_out[key] = self.links_out.get(key, 0) + 1
        self.status_dirty = True

    def on_lab(self, env: Envelope, line: bytes) -> None:
        try:
            head = _decode_head(env.body)
            body = msgspec.json.decode(env.body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.problem("bad_line", "sent the lab a body without a type", line)
            return
        if head.type == "init_ok" and head.in_reply_to == INIT_ID:
            self.on_init_ok()
        elif head.type == "error" and head.in_reply_to == INIT_ID:
            self.fail(f"answered init with an error: {line[:300].decode('utf-8', 'replace')}")
        elif head.type == "topology_ok":
            self.topology_ok = True
            self.status_dirty = True
        elif head.type == names.ROLE_REPORT:
            self.on_role(body, line)
        else:
            self.counters["to_lab"] = self.counters.get("to_lab", 0) + 1

    def on_init_ok(self) -> None:
        if self.ready:
            return
        self.ready = True
        self.status_dirty = True
        # A broadcast run's topology comes before anything else (a restarted program
        # must know its neighbours before the gossip it missed reaches it).
        try:
            topo = json.loads(self.topology_file.read_text())
        except (OSError, ValueError):
            topo = None
        if isinstance(topo, dict):
            self.send_lab_message({"type": "topology", "topology": topo})
        self.telemetry.emit("node.ready", pid=os.getpid(), control=self.control_endpoint,
                            program_pid=self.proc.pid, command=self.command)  # fmt: skip
        pending, self.pending = self.pending, []
        for payload in pending:
            self.to_program(payload)

    def on_role(self, body: dict[str, Any], line: bytes) -> None:
        role, term, leader = body.get("role"), body.get("term"), body.get("leader")
        if not isinstance(role, str) or not 0 < len(role) <= 32 or (
            term is not None and (not isinstance(term, int) or isinstance(term, bool))
        ):
            self.problem("bad_role", "sent a lab_role report without a role (a short string) "
                         "or with a term that is not an integer", line)  # fmt: skip
            return
        was_leader, old_term = self.role == "leader", self.term
        self.role, self.term = role, term
        self.leader = leader if isinstance(leader, str) and len(leader) <= 64 else None
        if role == "leader" and self.leader is None:
            self.leader = self.me
        if role == "leader" and (not was_leader or term != old_term):
            self.telemetry.emit(ev.BECAME_LEADER, term=term if term is not None else 0,
                                how="reported")  # fmt: skip
        elif was_leader and role != "leader":
            self.telemetry.emit(ev.STEPPED_DOWN, term=term, reason="reported")
        self.status_dirty = True

    def program_exited(self) -> int:
        try:
            code = self.proc.wait(timeout=1.0)
        except Exception:
            code = None
        if code is not None and code < 0:
            how = f"was killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        when = "" if self.ready else " before answering init"
        return self.fail(f"program {how}{when}")

    # -- to the program ------------------------------------------------------------------

    def drain_router(self) -> None:
        """Every message waiting on the data socket (at most DRAIN_BATCH: then check_data
        stays set, and the loop comes back without sleeping)."""
        self.check_data = True
        recv, opt = self.data.recv, self.data.getsockopt
        for _ in range(DRAIN_BATCH):
            # Asking first is cheaper than the zmq.Again a recv on an empty socket raises;
            # and this ZMQ_EVENTS, with nothing waiting, re-arms the socket's FD.
            if not opt(_EVENTS) & _POLLIN:
                self.check_data = False
                return
            try:
                # Frame by frame, as on the way out: recv_multipart costs a list and a
                # Python-level loop per message. A whole message is there once it shows.
                src_b = recv(_NOBLOCK)
                if not opt(_RCVMORE):
                    self.counters["malformed"] += 1  # [src, payload] or nothing
                    continue
                payload = recv(_NOBLOCK)
                if opt(_RCVMORE):
                    while opt(_RCVMORE):
                        recv(_NOBLOCK)
                    self.counters["malformed"] += 1
                    continue
            except zmq.Again:
                return
            try:
                env = _decode(payload)
            except (msgspec.DecodeError, msgspec.ValidationError):
                self.counters["malformed"] += 1
                continue
            src = self.src_names.get(src_b)
            if src is None:
                src = names.to_program(src_b.decode("utf-8", "replace"))
                if len(self.src_names) < MAX_LINKS:  # cli-* names come and go: bounded
                    self.src_names[src_b] = src
            if env.src != src and names.is_client(env.src) and src[:1] == "n":
                src = env.src  # a peer proxying a client's request (names.py)
            if env.src != src or env.dest != self.me or b"\n" in payload:
                # The router's word on the sender beats the payload's; one line, always.
                payload = _encode(Envelope(src, self.me, env.body))
            self.counters["in"] += 1
            key = src if src in self.links_in or len(self.links_in) < MAX_LINKS else "*"
            self.links_in[key] = self.links_in.get(key, 0) + 1
            self.status_dirty = True
            self.deliver(payload)

    def deliver(self, payload: bytes) -> None:
        """A message for the program: now, or once it has answered init."""
        if self.ready:
            self.to_program(payload)
        elif len(self.pending) < MAX_PENDING:
            self.pending.append(payload)
        else:
            self.problem("pending_full", "too many messages before init_ok (dropped)")

    def to_program(self, payload: bytes) -> None:
        if len(self.wbuf) + len(payload) > MAX_STDIN:
            self.problem("stdin_full", "does not read its stdin (messages to it dropped)")
            return
        self.wbuf += payload
        self.wbuf += b"\n"
        self.flush_stdin()

    def flush_stdin(self) -> None:
        while self.wbuf:
            try:
                n = os.write(self.in_fd, self.wbuf)
            except BlockingIOError:
                break
            except (BrokenPipeError, OSError):
                self.wbuf.clear()  # the program is gone; the exit check reports it
                break
            del self.wbuf[:n]
        want = bool(self.wbuf)
        if want != self.writing:
            if want:
                self.epoll.register(self.in_fd, _EPOLLOUT)
            else:
                self.epoll.unregister(self.in_fd)
            self.writing = want

    # -- problems ------------------------------------------------------------------------

    def problem(self, kind: str, what: str, line: bytes | None = None) -> None:
        """Count a misbehaviour; report the first of each kind, then at most once a second."""
        n = self.problems[kind] = self.problems.get(kind, 0) + 1
        self.status_dirty = True
        now = true_now()
        if now - self.reported.get(kind, -REPORT_EVERY) < REPORT_EVERY:
            return
        self.reported[kind] = now
        detail = f"{self.id} ({self.me}, `{self.command}`) {what}"
        if line is not None:
            detail += f": {line[:200].decode('utf-8', 'replace')!r}"
        self.last_error = detail
        tail = stderr_tail(self.stderr_path)
        self.telemetry.emit("external.error", node=self.id, problem=kind, count=n,
                            detail=detail, stderr=tail,
                            stderr_log=str(self.stderr_path))  # fmt: skip
        print(f"{detail} [{kind} x{n}]", flush=True)

    def fail(self, what: str) -> int:
        """The program cannot go on as this replica: report, stop it, end the adapter."""
        tail = stderr_tail(self.stderr_path)
        detail = f"{self.id} ({self.me}, `{self.command}`): {what}"
        self.problems["fatal"] = self.problems.get("fatal", 0) + 1
        self.telemetry.emit("external.error", node=self.id, problem="fatal", detail=detail,
                            stderr=tail, stderr_log=str(self.stderr_path), fatal=True)  # fmt: skip
        lines = " | ".join(tail) or "(empty)"
        # One line, and the last one: the supervisor quotes a dead child's last log line.
        print(f"error: {detail}; its stderr ({self.stderr_path}) ends: {lines}", flush=True)
        self.running = False
        self.exit_code = 3
        return 3

    # -- control and status --------------------------------------------------------------

    def handle_control(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request["cmd"]
        if cmd == "ping":
            return ok(node=self.id)
        if cmd == "status":
            return ok(status=self.status())
        if cmd == "clock":
            return self.set_clock(request.get("offset"), request.get("drift"))
        if cmd == "disk":
            return error(f"disk faults do not apply to {self.id}: it runs `{self.command}`, "
                         "whose disk I/O the lab does not carry out", "bad_fault")  # fmt: skip
        if cmd == "byzantine":
            return error(f"byzantine faults do not apply to {self.id} (an external program)",
                         "bad_fault")  # fmt: skip
        if cmd == "topology":
            topology = request.get("topology")
            if not isinstance(topology, dict):
                return error("'topology' must be a mapping of node to neighbours")
            self.send_lab_message({"type": "topology", "topology": topology})
            return ok()
        if cmd == "shutdown":
            self.running = False
            return ok()
        return error(f"unknown command {cmd!r}", "unknown_command")

    def send_lab_message(self, body: dict[str, Any]) -> None:
        body["msg_id"] = self.next_msg_id
        self.next_msg_id += 1
        self.to_program(_encode({"src": LAB, "dest": self.me, "body": body}))

    def set_clock(self, offset: Any, drift: Any) -> dict[str, Any]:
        if self.faketime is None:
            return error(f"clock faults do not apply to {self.id} (`{self.command}`): "
                         f"{self.clock_problem}", "bad_fault")  # fmt: skip
        try:
            new_offset = float(offset) if offset is not None else self.offset
            new_drift = float(drift) if drift is not None else self.drift
        except (TypeError, ValueError):
            return error("clock offset and drift must be numbers")
        if new_drift <= -1.0:
            return error(f"drift must be > -1 (a clock cannot run backwards): {new_drift}")
        self.offset, self.drift = new_offset, new_drift
        write_faketime(self.faketime, self.offset, self.drift)
        self.status_dirty = True
        self.telemetry.emit("node.clock", offset=self.offset, drift=self.drift)
        return ok(offset=self.offset, drift=self.drift)

    def status(self) -> dict[str, Any]:
        return {
            "role": self.role, "term": self.term, "leader": self.leader,
            "program_pid": self.proc.pid, "command": self.command, "ready": self.ready,
            "msgs_in": self.counters["in"], "msgs_out": self.counters["out"],
            "errors": sum(self.problems.values()), "problems": dict(self.problems),
            "last_error": self.last_error, "links_in": dict(self.links_in),
            "links_out": dict(self.links_out), "clock_offset": self.offset,
            "clock_drift": self.drift, "clock_faults": self.clock_problem or "libfaketime",
            "topology_ok": self.topology_ok, "counters": dict(self.counters),
        }  # fmt: skip

    def maybe_publish_status(self, now: float) -> None:
        # From init_ok on: the supervisor takes a replica's first status after its ready
        # as the sign that it runs (what a restart waits for).
        if not self.ready or not self.status_dirty or now - self.last_status_t < STATUS_INTERVAL:
            return
        s = self.status()
        self.status_dirty = False
        self.last_status_t = now
        if s != self.last_status:
            self.last_status = s
            self.telemetry.emit("node.status", **s)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=1.0)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        self.epoll.close()
        self.telemetry.close()
        self.data.close(0)
        self.control.close(0)
        self.ctx.term()


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = node_arguments("nodes.external.adapter")
    p.add_argument("--command", required=True, help="the program's argv, as a JSON list")
    p.add_argument("--logs", required=True)
    p.add_argument("--init-timeout", type=float, default=5.0)
    p.add_argument("--max-rate", type=float, default=10_000.0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    serve(parse_args(sys.argv[1:] if argv is None else argv), Adapter,
          refuse_with((ProgramError, OSError), "cannot start the program"))  # fmt: skip


if __name__ == "__main__":
    main()
