"""The seed's order router on etcd: a lease lock, its revision the fencing token.

Each etcd member process (member.py) is also an order router that contends for one lock,
as the seed's `etcdctl put /lock/order-router r0 --lease=$(etcdctl lease grant 10 ...)`,
made exclusive: a lease with a TTL, then a txn that creates /lock/order-router = r<i>
with that lease only if the key does not exist (create_revision == 0). The winner's key
revision is its fencing token: every later holder creates the key again, at a higher
revision. The holder keeps the lease alive (every TTL/3); the others poll the lock.

What the holder believes, and why it can be wrong: it holds the lock until etcd tells it
otherwise (a keep-alive answered with TTL 0: the lease expired and etcd deleted the key).
A process paused past its TTL (`fault pause r0`, SIGSTOP: the seed's GC pause) resumes
believing it holds the lock, and the orders it picks up before its next keep-alive
answers go to the broker with the old token: the zombie write. A check of its own clock
before each order would narrow that window, never close it (the pause can fall between
the check and the send: Kleppmann, "How to do distributed locking"); the broker's fencing
(nodes/broker.py) closes it. docs/architecture.md, "etcd members", says more.

Routers start contending one after another (r<i> waits i x STAGGER after etcd first
answers it), so a fresh lab's first holder is r0, as in the seed, and a scenario can
pause it by name.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from nodes.etcd.gateway import Gateway, GatewayError

KEY = "/lock/order-router"
STAGGER = 1.0  # seconds between the routers' first attempts, in id order
POLL = 0.25  # a router that does not hold the lock tries again this often


class LockRouter:
    """The lock's state for one member; `run` on its own thread, `token` from any."""

    def __init__(self, me: str, index: int, host: str, port: int, ttl: int,
                 emit: Callable[..., None]) -> None:  # fmt: skip
        self.me, self.index, self.ttl = me, index, ttl
        self.gw = Gateway(host, port, timeout=max(1.0, ttl / 2))
        self.emit = emit  # telemetry (lock.acquired, lock.lost), from this thread only
        self.mutex = threading.Lock()
        self.lease: int | None = None
        self._token: int | None = None  # the lock's create_revision while we believe we hold it
        self.holder: str | None = None  # who holds it, as last seen
        self.running = True

    def token(self) -> tuple[int | None, str | None]:
        """(our fencing token if we believe we hold the lock, else None; the holder)."""
        with self.mutex:
            return self._token, self.holder

    def snapshot(self) -> dict[str, Any]:
        with self.mutex:
            return {"lock_holder": self.holder, "lock_token": self._token}

    def run(self) -> None:
        while self.running and not self._grant():
            time.sleep(POLL)  # no quorum yet
        time.sleep(self.index * STAGGER)
        while self.running:
            with self.mutex:
                holding = self._token is not None
            if holding:
                self._keep_alive()
                time.sleep(self.ttl / 3)
            else:
                self._try_acquire()
                time.sleep(POLL)

    def _grant(self) -> bool:
        try:
            self.lease = self.gw.lease_grant(self.ttl)
            return True
        except GatewayError:
            return False

    def _try_acquire(self) -> None:
        if self.lease is None and not self._grant():
            return
        assert self.lease is not None
        try:
            rev, who = self.gw.acquire(KEY, self.me, self.lease)
        except GatewayError as e:
            if "lease not found" in str(e):
                self.lease = None  # our idle lease expired while another held the lock
            return
        with self.mutex:
            self.holder = who
            if rev is not None:
                self._token = rev
        if rev is not None:
            self.emit("lock.acquired", key=KEY, token=rev, lease=self.lease, ttl=self.ttl)
        elif who is not None:
            # The other holder's lease keeps our own idle lease from mattering: refresh
            # it now and then so the next attempt does not fail on an expired one.
            try:
                self.gw.lease_keepalive(self.lease)
            except GatewayError:
                pass

    def _keep_alive(self) -> None:
        assert self.lease is not None
        try:
            left = self.gw.lease_keepalive(self.lease)
        except GatewayError:
            return  # etcd did not say: the holder goes on believing (see the docstring)
        if left <= 0:
            with self.mutex:
                token, self._token, self.holder = self._token, None, None
            self.lease = None
            self.emit("lock.lost", key=KEY, token=token, reason="lease expired")

    def close(self) -> None:
        self.running = False  # the thread's connection goes with the process
