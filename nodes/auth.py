"""Who may talk to a lab: one secret per lab, checked when a connection is made.

The supervisor creates a random secret when a lab starts (`<lab-dir>/secrets/lab.key`,
mode 0600 in a 0700 directory) and hands it to its children in their environment
(LABCTL_LAB_KEY; never on a command line, which every user can read in /proc). Every
socket a lab process binds is a ZeroMQ PLAIN server whose ZAP handler (a thread of that
process) accepts a user name only with its password, HMAC-SHA256(secret, name): knowing
the secret is what lets a process join, so a process of another user, who cannot read
the key file, cannot connect to any socket of the lab, let alone drive or stop it.

Why PLAIN and not CURVE: the check happens once, at the handshake; afterwards PLAIN costs
nothing per message, where CURVE encrypts and authenticates every frame (the router's hop
is a few microseconds; per-frame crypto would be a large part of it). What CURVE adds is
secrecy on the wire, and the wire is 127.0.0.1: reading loopback traffic needs root, who
can read the key file anyway. A lab's threat is other local users, not the network.

The name a connection authenticated as is what the router takes as the source of its
frames (faults/router.py): a process that sets its ZeroMQ identity to "r1" but did not
authenticate as r1 can neither send as r1 nor take r1's traffic. Inside one user's
processes nothing is secret (they can read each other's memory), so every process of the
lab holds the secret and may authenticate under any name; the binding keeps an endpoint
that picks a wrong name (a bug, a stale test, a fuzzer) from impersonating a node.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
from pathlib import Path

import zmq

ENV = "LABCTL_LAB_KEY"  # the secret, hex, in a child's environment
SECRET_FILE = Path("secrets") / "lab.key"
DOMAIN = b"labctl"
ZAP_ENDPOINT = "inproc://zeromq.zap.01"  # fixed by the ZAP specification (RFC 27)
MAX_USER = 128  # longer user names are refused: no node or client name is that long


class AuthError(Exception):
    """The lab's secret cannot be read (another user's lab, or none was created)."""


def password(secret: bytes, user: str | bytes) -> bytes:
    name = user.encode() if isinstance(user, str) else user
    return hmac.new(secret, b"labctl-zap\0" + name, hashlib.sha256).hexdigest().encode()


def derive(secret: bytes, purpose: str) -> str:
    """A key for one purpose (the PBFT lab key), so no two uses share bytes."""
    return hmac.new(secret, b"labctl-key\0" + purpose.encode(), hashlib.sha256).hexdigest()


def create_secret(lab_dir: Path) -> bytes:
    """A fresh secret for a lab starting in `lab_dir`, written 0600 (the dir 0700)."""
    lab_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(lab_dir, 0o700)
    folder = lab_dir / SECRET_FILE.parent
    folder.mkdir(mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    secret = secrets.token_bytes(32)
    tmp = folder / f".lab.key.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, secret.hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, lab_dir / SECRET_FILE)
    return secret


def read_secret(lab_dir: Path) -> bytes:
    path = lab_dir / SECRET_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except PermissionError:
        raise AuthError(
            f"cannot read {path}: permission denied (the lab belongs to another user)"
        ) from None
    except (OSError, ValueError) as e:
        raise AuthError(f"cannot read the lab's secret {path}: {e}") from None


def env_secret() -> bytes | None:
    """The secret a lab process was started with, or None (a process outside any lab)."""
    raw = os.environ.get(ENV)
    if not raw:
        return None
    try:
        return bytes.fromhex(raw)
    except ValueError:
        return None


def child_env(secret: bytes) -> dict[str, str]:
    return {ENV: secret.hex()}


def as_client(sock: zmq.Socket, secret: bytes | None, user: str) -> None:
    """Present `user` and its password on `sock` (before connect). No secret: no creds."""
    if secret is None:
        return
    sock.setsockopt(zmq.PLAIN_USERNAME, user.encode())
    sock.setsockopt(zmq.PLAIN_PASSWORD, password(secret, user))


def as_server(sock: zmq.Socket, secret: bytes | None) -> None:
    """Require authentication on `sock` (before bind); its context must run a `Zap`."""
    if secret is None:
        return
    sock.setsockopt(zmq.PLAIN_SERVER, 1)
    sock.setsockopt(zmq.ZAP_DOMAIN, DOMAIN)


class Zap:
    """The ZAP handler of one process: a thread answering the context's handshakes.

    Bound before any server socket, so no handshake can find the handler missing. It
    stops when the context is terminated (close every other socket, then ctx.term())."""

    def __init__(self, ctx: zmq.Context, secret: bytes) -> None:
        self.secret = secret
        self.accepted = 0
        self.rejected = 0
        self.sock = ctx.socket(zmq.REP)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(ZAP_ENDPOINT)
        _HANDLERS[id(ctx)] = self.sock
        self.thread = threading.Thread(target=self._serve, name="zap", daemon=True)
        self.thread.start()

    def check(self, frames: list[bytes]) -> tuple[bytes, bytes]:
        """(status code, user id) for one ZAP request."""
        if len(frames) < 6 or frames[0] != b"1.0":
            return b"400", b""
        domain, mechanism, creds = frames[2], frames[5], frames[6:]
        if domain != DOMAIN or mechanism != b"PLAIN" or len(creds) != 2:
            return b"400", b""
        user, given = creds
        if not 0 < len(user) <= MAX_USER:
            return b"400", b""
        if not hmac.compare_digest(given, password(self.secret, user)):
            return b"400", b""
        return b"200", user

    def _serve(self) -> None:
        sock = self.sock
        try:
            while True:
                frames = sock.recv_multipart()
                status, user = self.check(frames)
                if status == b"200":
                    self.accepted += 1
                else:
                    self.rejected += 1
                version = frames[0] if frames else b"1.0"
                request_id = frames[1] if len(frames) > 1 else b""
                text = b"OK" if status == b"200" else b"bad credentials"
                sock.send_multipart([version, request_id, status, text, user, b""])
        except zmq.ContextTerminated:
            pass
        except zmq.ZMQError:
            pass  # a malformed exchange on an inproc REP: nothing outside can reach it
        finally:
            sock.close(0)


# id(context) -> its Zap's socket, for `destroy` (a context lives for its whole process).
_HANDLERS: dict[int, zmq.Socket] = {}


def destroy(ctx: zmq.Context) -> None:
    """ctx.destroy(linger=0) for a context that may run a Zap.

    pyzmq's destroy closes every socket from the calling thread, the Zap's too while its
    thread waits in recv on it: libzmq then aborts the process (signaler.cpp:238). So
    close all the others, then terminate: the Zap's recv raises ContextTerminated and its
    own thread closes its socket."""
    handler = _HANDLERS.pop(id(ctx), None)
    for sock in list(ctx._sockets):  # pyzmq's own record of the context's open sockets
        if sock is not handler and not sock.closed:
            sock.close(linger=0)
    ctx.term()


def serve(ctx: zmq.Context, secret: bytes | None) -> Zap | None:
    """Start the ZAP handler of `ctx` when the process has a secret."""
    return Zap(ctx, secret) if secret is not None else None
