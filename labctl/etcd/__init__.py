"""The lab side of a real etcd (nodes/etcd/): its config, the network namespaces, the TCP
fault proxy and the member processes the supervisor starts.

A lab config with a "system" mapping runs a real system's members as replicas (protocol
"etcd"):

    {"name": "etcd", "binary": "/usr/bin/etcd", "heartbeat_ms": 100, "election_ms": 1000,
     "lock_ttl": 2, "pre_vote": false}

`system_config` validates it before anything starts (the CLI's `--system etcd`);
`EtcdNodes` is the supervisor's helper: it makes one network namespace per member
(netns.py), starts the TCP fault proxy (faults/tcpproxy.py) on the proxy address with one
listener per member, hands the proxy every link table the router gets, and builds each
member's command line (nodes/etcd/member.py). Why namespaces: docs/architecture.md.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from labctl.etcd import netns
from nodes.process import error, request
from protocols.display import DEFAULT_ROLES, Column, Display

ETCD = "etcd"
SYSTEMS = (ETCD,)
INSTALL = "apt-get install -y etcd-server etcd-client"
PROXY = "peerproxy"  # the proxy's child name
PEER_PORT = 2380  # the proxy listens on PEER_PORT + i for member i; each member on 2380
DISPLAY = Display(
    roles=DEFAULT_ROLES,
    columns=(
        Column("role", format="role", priority=2),
        Column("term", priority=3, right=True),
        Column("leader", priority=4),
        Column("commit_index", "commit", priority=5, right=True),
        Column("applied_index", "applied", priority=6, right=True),
        Column("lock_token", "lock", priority=7, right=True),  # the order router's token
        Column("etcd_pid", "etcd", priority=8, right=True),
    ),
)
# What etcd is, for the checkers: no exactly-once session table of the lab's (a retried
# put is a second put), one total order of writes.
DECLARED = {"exactly_once": False, "ordering": "total"}


class SystemConfigError(ValueError):
    """A bad --system: one line for the user."""


def find_binary(path: str | None) -> str:
    exe = shutil.which(path or ETCD)
    if exe is None:
        where = f"{path!r} is not an executable" if path else "no `etcd` on PATH"
        raise SystemConfigError(f"etcd is not installed ({where}): {INSTALL}")
    return exe


def system_config(name: str, binary: str | None = None, check_host: bool = True,
                  pre_vote: bool = False) -> dict[str, Any]:  # fmt: skip
    """The validated system mapping; raises SystemConfigError naming what to do.

    pre_vote: etcd's --pre-vote (off by default in 3.4). Without it a member cut off from
    the leader campaigns in ever higher terms, and on healing its term deposes the
    leader (an election that the partition, not a crash, caused); with it, a member asks
    first and stays in its term until a majority would vote for it (Raft thesis 9.6, as
    labctl's Raft does by default)."""
    if name not in SYSTEMS:
        raise SystemConfigError(f"--system must be one of {', '.join(SYSTEMS)}, got {name!r}")
    exe = find_binary(binary)
    if check_host:
        problem = netns.problem()
        if problem:
            raise SystemConfigError(problem)
    # lock_ttl: the order router's lease (nodes/etcd/lockrouter.py), in seconds; etcd's
    # floor is 1.5 x the election timeout (here 1.5 s).
    if not isinstance(pre_vote, bool):
        raise SystemConfigError(f"pre_vote must be true or false, got {pre_vote!r}")
    return {"name": name, "binary": exe, "heartbeat_ms": 100, "election_ms": 1000,
            "lock_ttl": 2, "pre_vote": pre_vote}


class EtcdNodes:
    """What the supervisor does differently for a lab of etcd members."""

    def __init__(self, system: dict[str, Any], replicas: list[str], tag: str) -> None:
        self.system = system
        self.replicas = replicas
        self.plan: netns.Plan | None = None
        self.tag = tag
        # The proxy's last report: [src, dst, bytes, chunks, held, connections] per link
        # (faults/tcpproxy.py), in `labctl status --json` as peer_links.
        self.links: list[Any] = []

    def setup(self) -> None:
        """Sweep what dead labs left, then make this lab's namespaces (NetnsError)."""
        problem = netns.problem()
        if problem:
            raise netns.NetnsError(problem)
        netns.sweep()
        self.plan = netns.make(self.tag, self.replicas)

    def teardown(self) -> list[str]:
        if self.plan is None:
            return []
        left = netns.destroy(self.plan)
        self.plan = None
        return left

    def peer_urls(self) -> dict[str, str]:
        assert self.plan is not None
        return {r: f"http://{self.plan.proxy_ip}:{PEER_PORT + i}"
                for i, r in enumerate(self.replicas)}  # fmt: skip

    def proxy_argv(self, telemetry: str, seed: int, me: int) -> list[str]:
        assert self.plan is not None
        spec = {
            "listen": [{"dst": m.name, "host": self.plan.proxy_ip, "port": PEER_PORT + i,
                        "upstream": [m.ns_ip, PEER_PORT]}
                       for i, m in enumerate(self.plan.members)],
            "sources": {m.ns_ip: m.name for m in self.plan.members},
        }  # fmt: skip
        return ["-m", "faults.tcpproxy", "--spec", json.dumps(spec), "--name", PROXY,
                "--telemetry", telemetry, "--seed", str(seed), "--parent-pid", str(me)]  # fmt: skip

    def member_argv(self, r: str, router: str, telemetry: str, run: Path, me: int) -> list[str]:
        assert self.plan is not None
        m = self.plan.members[self.replicas.index(r)]
        return [
            "-m", "nodes.etcd.member", "--id", r, "--replicas", ",".join(self.replicas),
            "--etcd", self.system["binary"], "--netns", m.netns, "--ns-ip", m.ns_ip,
            "--peer-urls", json.dumps(self.peer_urls()), "--token", f"labctl-{self.tag}",
            "--heartbeat-ms", str(self.system["heartbeat_ms"]),
            "--election-ms", str(self.system["election_ms"]),
            "--lock-ttl", str(self.system.get("lock_ttl", 2)),
            "--router", router, "--telemetry", telemetry, "--logs", str(run / "logs"),
            "--data-dir", str(run / "data" / r), "--parent-pid", str(me),
            *(["--pre-vote"] if self.system.get("pre_vote") else []),
        ]  # fmt: skip

    @staticmethod
    def push_links(ctx: Any, children: dict[str, Any], table: list[dict[str, Any]],
                   answer: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
        """The router's link table (its `answer` given) to the proxy too: one fault
        vocabulary for client and peer traffic. The answer to give the user."""
        proxy = children.get(PROXY)
        if not answer.get("ok") or proxy is None or proxy.control is None:
            return answer
        got = request(ctx, proxy.control, {"cmd": "set_links", "links": table}, 2.0)
        return got if got is not None else error("the TCP fault proxy did not answer", "lab_failed")


def supervisor_tag() -> str:
    return str(os.getpid())
