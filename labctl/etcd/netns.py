"""Network namespaces for an etcd lab: every member its own address, so the TCP fault proxy
(faults/tcpproxy.py) knows who sends by the source address.

For a lab whose supervisor has pid P and members r0..rN-1, on subnet 10.213.K.0/24 (K the
first subnet no interface of this machine uses; `make` picks it and makes the interfaces
under an exclusive lock, so two labs started at the same instant cannot pick the same K):

    netns labctl-P-r<i>      veth lcP-<i>n (10.213.K.<4i+2>/30, lo up, default route)
    root namespace           veth lcP-<i>h (10.213.K.<4i+1>/30)
                             veth lcPpx    (10.213.K.254/32: the proxy's address; its
                                            peer lcPpy, both here, stands in for a dummy)

Every address is inside this machine: in the lab's own namespaces, or on the lab's own
proxy interface. IP forwarding stays as it is (off on this machine), so a member reaches
another only through the proxy. Everything here needs root (CAP_NET_ADMIN) and iproute2;
`problem()` says so in one line. `destroy` removes what `create` made, and `sweep`
what a lab killed with SIGKILL left behind (namespaces of supervisors no longer alive).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

PREFIX = "labctl-"
BASE = "10.213"
# Held while a lab picks its subnet and makes its interfaces (root only, like the rest).
# flock: the kernel releases it when its holder dies, however it dies.
LOCK = "/run/labctl-netns.lock"
LOCK_WAIT = 60.0  # another lab's `create` is a few dozen `ip` calls of at most 10 s each


class NetnsError(RuntimeError):
    """The namespaces could not be made: one line for the user."""


@dataclass(frozen=True)
class Member:
    name: str  # r0
    netns: str  # labctl-P-r0
    host_if: str
    ns_if: str
    host_ip: str
    ns_ip: str


@dataclass(frozen=True)
class Plan:
    tag: str  # the supervisor's pid
    subnet: int
    proxy_if: str
    proxy_ip: str
    members: tuple[Member, ...]


def problem() -> str | None:
    """Why this process cannot make namespaces, or None."""
    if os.geteuid() != 0:
        return ("etcd labs put every member in a network namespace of its own, which needs "
                "root (CAP_NET_ADMIN): run labctl as root (sudo)")  # fmt: skip
    if shutil.which("ip") is None:
        return "etcd labs need iproute2's `ip` (apt-get install -y iproute2)"
    if not os.path.isdir("/proc/self/ns") or not os.path.exists("/proc/self/ns/net"):
        return "this kernel has no network namespaces (/proc/self/ns/net is missing)"
    return None


def _ip(*args: str, netns: str | None = None) -> None:
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise NetnsError(f"`{' '.join(argv)}` failed: {done.stderr.strip() or done.returncode}")


def _used_subnets() -> set[int]:
    out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True,
                         timeout=10).stdout  # fmt: skip
    return {int(m) for m in re.findall(rf"inet {re.escape(BASE)}\.(\d+)\.", out)}


def plan(tag: str, replicas: list[str]) -> Plan:
    if len(replicas) > 60:
        raise NetnsError("at most 60 members per etcd lab (one /24 of /30s)")
    used = _used_subnets()
    free = [k for k in range(1, 255) if k not in used]
    if not free:
        raise NetnsError(f"no free subnet in {BASE}.0.0/16 for the lab's namespaces")
    k = free[0]
    members = tuple(
        Member(r, f"{PREFIX}{tag}-{r}", f"lc{tag}-{i}h", f"lc{tag}-{i}n",
               f"{BASE}.{k}.{4 * i + 1}", f"{BASE}.{k}.{4 * i + 2}")
        for i, r in enumerate(replicas)
    )  # fmt: skip
    return Plan(tag, k, f"lc{tag}px", f"{BASE}.{k}.254", members)


@contextlib.contextmanager
def claim(path: str | None = None, wait: float = LOCK_WAIT) -> Iterator[None]:
    """The machine-wide lock on picking a subnet: between `plan` reading which subnets
    interfaces use and `create` adding this lab's, no other lab may pick."""
    fd = os.open(path or LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    why = f"{path or LOCK} for over {wait:g}s while making its namespaces"
                    raise NetnsError(f"another etcd lab has held {why}") from None
                time.sleep(0.05)  # flock has no timed wait; its holder is running `ip`
        yield
    finally:
        os.close(fd)  # releases the lock


def make(tag: str, replicas: list[str]) -> Plan:
    """Pick a free subnet and make the lab's namespaces on it, atomically with respect to
    every other lab on this machine (NetnsError)."""
    with claim():
        p = plan(tag, replicas)
        create(p)
    return p


def create(p: Plan) -> None:
    """Make the namespaces, links and addresses; on any failure undo what was made."""
    try:
        # A veth pair with both ends here stands in for a dummy interface (this kernel has
        # no dummy module): the proxy's address lives on one end.
        _ip("link", "add", p.proxy_if, "type", "veth", "peer", "name", p.proxy_if[:-1] + "y")
        _ip("addr", "add", f"{p.proxy_ip}/32", "dev", p.proxy_if)
        _ip("link", "set", p.proxy_if[:-1] + "y", "up")
        _ip("link", "set", p.proxy_if, "up")
        for m in p.members:
            _ip("netns", "add", m.netns)
            _ip("link", "add", m.host_if, "type", "veth", "peer", "name", m.ns_if)
            _ip("link", "set", m.ns_if, "netns", m.netns)
            _ip("addr", "add", f"{m.host_ip}/30", "dev", m.host_if)
            _ip("link", "set", m.host_if, "up")
            _ip("addr", "add", f"{m.ns_ip}/30", "dev", m.ns_if, netns=m.netns)
            _ip("link", "set", m.ns_if, "up", netns=m.netns)
            _ip("link", "set", "lo", "up", netns=m.netns)
            _ip("route", "add", "default", "via", m.host_ip, netns=m.netns)
    except (NetnsError, OSError, subprocess.TimeoutExpired) as e:
        destroy(p)
        raise NetnsError(f"cannot make the lab's network namespaces: {e}") from None


def destroy(p: Plan) -> list[str]:
    """Remove everything `create` made (what is already gone is fine); what could not be
    removed, for the log."""
    left = []
    for m in p.members:
        # Deleting the namespace deletes the veth end inside it, and with it its peer.
        for args in (("netns", "delete", m.netns), ("link", "delete", m.host_if)):
            try:
                _ip(*args)
            except (NetnsError, OSError, subprocess.TimeoutExpired) as e:
                if "Cannot find" not in str(e) and "No such" not in str(e):
                    left.append(str(e))
    try:
        _ip("link", "delete", p.proxy_if)
    except (NetnsError, OSError, subprocess.TimeoutExpired) as e:
        if "Cannot find" not in str(e):
            left.append(str(e))
    return [x for x in left if "does not exist" not in x]


def lab_namespaces() -> list[str]:
    """Every namespace an etcd lab made that still exists."""
    done = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    return [ln.split()[0] for ln in done.stdout.splitlines()
            if ln.split() and ln.split()[0].startswith(PREFIX)]  # fmt: skip


def sweep() -> list[str]:
    """Remove the namespaces and interfaces of labs whose supervisor is gone (SIGKILLed:
    it could not clean up). Returns the namespaces removed."""
    removed = []
    for ns in lab_namespaces():
        tag = ns[len(PREFIX):].split("-")[0]
        if tag.isdigit() and not _alive(int(tag)):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, timeout=10)
            removed.append(ns)
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                           timeout=10).stdout  # fmt: skip
    for name, tag in re.findall(r"^\d+: (lc(\d+)(?:px|-\d+h))[@:]", links, re.M):
        if not _alive(int(tag)):
            subprocess.run(["ip", "link", "delete", name], capture_output=True, timeout=10)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
