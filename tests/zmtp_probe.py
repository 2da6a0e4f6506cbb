"""An outsider's ZMTP 3.0 client in the standard library only (no pyzmq, no secret).

    python3 tests/zmtp_probe.py LAB_DIR ENDPOINT...

Run by the tests as another user (uid nobody, with the system's python) against every
socket of a running lab: for each endpoint it tries the NULL mechanism and PLAIN with a
guessed password, as a DEALER naming itself r1, and sends {"cmd": "shutdown"} and a
frame to r0 on whatever it gets. It also tries to read the lab's state and secret.
Prints one JSON document: what each attempt got back.
"""

from __future__ import annotations

import json
import socket
import struct
import sys

SHUTDOWN = b"\x81\xa3cmd\xa8shutdown"  # msgpack {"cmd": "shutdown"}, by hand


def greeting(mechanism: bytes) -> bytes:
    return b"\xff" + b"\0" * 8 + b"\x7f" + b"\x03\x00" + mechanism.ljust(20, b"\0") + b"\0" * 32


def command(name: bytes, body: bytes) -> bytes:
    data = bytes([len(name)]) + name + body
    return bytes([0x04, len(data)]) + data


def prop(name: bytes, value: bytes) -> bytes:
    return bytes([len(name)]) + name + struct.pack(">I", len(value)) + value


def frame(body: bytes, more: bool) -> bytes:
    return bytes([0x01 if more else 0x00, len(body)]) + body


def read_command(sock: socket.socket) -> bytes:
    head = sock.recv(2)
    if len(head) < 2:
        return b"closed"
    size = head[1]
    body = b""
    while len(body) < size:
        chunk = sock.recv(size - len(body))
        if not chunk:
            return b"closed"
        body += chunk
    return body[1 : 1 + body[0]]  # the command's name


def attempt(endpoint: str, mechanism: bytes) -> str:
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    try:
        sock = socket.create_connection((host, int(port)), timeout=2.0)
    except OSError as e:
        return f"connect failed: {e}"
    try:
        sock.sendall(greeting(mechanism))
        theirs = b""
        while len(theirs) < 64:
            chunk = sock.recv(64 - len(theirs))
            if not chunk:
                return "closed during greeting"
            theirs += chunk
        meta = prop(b"Socket-Type", b"DEALER") + prop(b"Identity", b"r1")
        if mechanism == b"PLAIN":
            sock.sendall(command(b"HELLO", b"\x02r1\x05guess"))
            answer = read_command(sock)
            if answer != b"WELCOME":
                return f"refused ({answer.decode(errors='replace')})"
            sock.sendall(command(b"INITIATE", meta))
        else:
            sock.sendall(command(b"READY", meta))
        answer = read_command(sock)
        if answer != b"READY":
            return f"refused ({answer.decode(errors='replace')})"
        # In: try to stop the lab and to talk as r1.
        sock.sendall(frame(SHUTDOWN, False))
        sock.sendall(frame(b"r0", True) + frame(b"forged", False))
        return "accepted"
    except OSError as e:
        return f"closed ({e.__class__.__name__})"
    finally:
        sock.close()


def readable(path: str) -> str:
    try:
        with open(path, "rb") as f:
            f.read(1)
        return "read"
    except OSError as e:
        return e.__class__.__name__


def main() -> None:
    lab_dir, endpoints = sys.argv[1], sys.argv[2:]
    out = {
        "files": {
            name: readable(f"{lab_dir}/{name}") for name in ("state.json", "secrets/lab.key")
        },
        "endpoints": {
            ep: {"null": attempt(ep, b"NULL"), "plain": attempt(ep, b"PLAIN")}
            for ep in endpoints
        },
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
