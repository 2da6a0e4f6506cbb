"""A minimal Maelstrom node runtime for the test programs here (stdlib only, one thread):
read JSON lines from stdin, dispatch on body type, send and reply, timers."""

from __future__ import annotations

import heapq
import json
import os
import select
import sys
import time


class Node:
    def __init__(self) -> None:
        self.id = ""
        self.ids: list[str] = []
        self.handlers = {}
        self.callbacks = {}
        self.timers: list[tuple[float, int, object]] = []
        self.next_id = 0
        self.on("init", self._init)
        self.on_init = None

    def on(self, kind, fn) -> None:
        self.handlers[kind] = fn

    def log(self, text: str) -> None:
        sys.stderr.write(f"{self.id}: {text}\n")
        sys.stderr.flush()

    def send(self, dest: str, body: dict) -> None:
        sys.stdout.write(json.dumps({"src": self.id, "dest": dest, "body": body}) + "\n")
        sys.stdout.flush()

    def reply(self, msg: dict, body: dict) -> None:
        body = dict(body, in_reply_to=msg["body"].get("msg_id"))
        self.send(msg["src"], body)

    def rpc(self, dest: str, body: dict, callback) -> int:
        self.next_id += 1
        self.callbacks[self.next_id] = callback
        self.send(dest, dict(body, msg_id=self.next_id))
        return self.next_id

    def after(self, delay: float, fn) -> None:
        self.next_id += 1
        heapq.heappush(self.timers, (time.monotonic() + delay, self.next_id, fn))

    def report_role(self, role: str, term: int) -> None:
        self.send("lab", {"type": "lab_role", "role": role, "term": term})

    def _init(self, msg: dict) -> None:
        self.id = msg["body"]["node_id"]
        self.ids = msg["body"]["node_ids"]
        self.reply(msg, {"type": "init_ok"})
        if self.on_init:
            self.on_init()

    def run(self) -> None:
        buf = b""
        fd = sys.stdin.fileno()
        while True:
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                _, _, fn = heapq.heappop(self.timers)
                fn()
            wait = max(0.0, self.timers[0][0] - time.monotonic()) if self.timers else 1.0
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if line.strip():
                    self._dispatch(json.loads(line))

    def _dispatch(self, msg: dict) -> None:
        body = msg["body"]
        cb = self.callbacks.pop(body.get("in_reply_to"), None)
        if cb is not None:
            cb(msg)
            return
        fn = self.handlers.get(body["type"])
        if fn is None:
            self.reply(msg, {"type": "error", "code": 10, "text": f"no {body['type']}"})
            return
        fn(msg)
