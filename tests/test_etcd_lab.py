"""A real etcd under the lab's faults (labctl/etcd/, nodes/etcd/): three members in their
own network namespaces, the leader partitioned away, a new leader elected, a write and a
linearizable read through the lab's client path, a delay seen in a write's latency, a member
killed and restarted on its own WAL, and `down` leaving no process and no
namespace behind. Needs root (namespaces) and Debian's etcd-server: skipped, saying
which, without them. Slow (etcd elections and shutdowns take seconds)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from labctl.etcd import netns
from tests.conftest import CLI, read_jsonl, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("etcd") is None,
                       reason="etcd is not installed (apt-get install -y etcd-server etcd-client)"),
    pytest.mark.skipif(netns.problem() is not None, reason=str(netns.problem())),
]  # fmt: skip


@pytest.fixture
def lab(cli: CLI) -> Iterator[CLI]:
    """The cli fixture, plus: whatever namespaces this lab made are gone afterwards, even
    when the test failed half-way (the supervisor may have been killed by the cleanup)."""
    before = set(netns.lab_namespaces())
    try:
        yield cli
    finally:
        cli.cleanup()
        netns.sweep()
        for ns in set(netns.lab_namespaces()) - before:  # ours, and its supervisor alive?
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, check=False)


def leader(cli: CLI, among: list[str] | None = None) -> str | None:
    doc = cli.status()
    leaders = [n["id"] for n in doc["nodes"] if n["role"] == "leader"
               and (among is None or n["id"] in among)]  # fmt: skip
    return leaders[0] if len(leaders) == 1 else None


def test_leader_partitioned_away_is_replaced_and_down_leaves_nothing(lab: CLI) -> None:
    state = lab.up("--system", "etcd", "-n", "3")
    tag = str(state["supervisor_pid"])
    ours = [ns for ns in netns.lab_namespaces() if ns.startswith(f"{netns.PREFIX}{tag}-")]
    assert len(ours) == 3
    old = wait_until(lambda: leader(lab), timeout=20)
    doc = lab.status()
    etcd_pids = [n["etcd_pid"] for n in doc["nodes"]]
    assert all(psutil.Process(pid).name() == "etcd" for pid in etcd_pids)
    lab.run("client", "put", "k", "before")
    # Delay on the leader's links to its peers: a write waits for a follower's ack.
    lab.run("fault", "delay", "--from", "leader", "--to", "followers", "--ms", "300")
    out = lab.run("client", "put", "k", "slow", "--timeout", "5s").stdout
    assert out.startswith("ok") and float(out.rsplit("(", 1)[1].split()[0]) >= 290, out
    lab.run("fault", "heal")

    lab.run("fault", "partition", "--from", "leader", "--to", "followers")
    followers = [n for n in ("r0", "r1", "r2") if n != old]
    new = wait_until(lambda: leader(lab, followers), timeout=20)
    assert new != old
    out = lab.run("client", "put", "k", "after", "--via", new, "--timeout", "5s").stdout
    assert out.startswith("ok from " + new), out
    got = lab.run("client", "get", "k", "--via", followers[0], "--timeout", "5s").stdout
    assert "value=after" in got, got
    # The old leader, cut off, cannot serve a linearizable read.
    stale = lab.run("client", "get", "k", "--via", old, "--timeout", "2s", check=False)
    assert stale.returncode != 0 and "timeout" in stale.stdout, stale.stdout

    run_dir = doc["run_dir"]
    # The proxy carried the peer traffic, per directed link, both ways.
    links = {(row[0], row[1]) for row in wait_until(lambda: lab.status().get("peer_links"))}
    assert {(old, followers[0]), (followers[0], old)} <= links, links
    lab.run("fault", "heal")
    # Kill and restart: a fresh etcd on the member's own data dir (its WAL) rejoins.
    victim = followers[0]
    before = next(n for n in lab.status()["nodes"] if n["id"] == victim)["etcd_pid"]
    lab.run("fault", "kill", victim)
    lab.run("fault", "restart", victim)
    # Back in the cluster, as a follower or, on a loaded machine, as its new leader: etcd
    # 3.4 has no pre-vote, so a rejoining member whose election timer fires first may
    # win the next term (seen: r0 leader of term 6 after its restart).
    etcd_pids.append(wait_until(lambda: next(
        (n["etcd_pid"] for n in lab.status()["nodes"] if n["id"] == victim
         and n["role"] in ("follower", "leader") and n["etcd_pid"] != before), None),
        timeout=20))  # fmt: skip
    wait_until(lambda: len(lab.status()["leaders"]) == 1, timeout=20)
    got = lab.run("client", "get", "k", "--via", victim, "--timeout", "5s").stdout
    assert "value=after" in got, got
    lab.run("down", timeout=60)
    history = read_jsonl(Path(run_dir) / "history.jsonl")
    assert {r["type"] for r in history} >= {"invoke", "ok", "info"}
    # Every read was linearizable: the checker judged etcd's history and found nothing.
    summary = json.loads((Path(run_dir) / "summary.json").read_text())
    assert summary["violations"] == [], summary["violations"]
    assert summary["checkers"]["linearizability"]["checked"]
    assert not [ns for ns in netns.lab_namespaces() if ns.startswith(f"{netns.PREFIX}{tag}-")]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert f"lc{tag}" not in links
    wait_until(lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status()
                               != psutil.STATUS_ZOMBIE for p in etcd_pids), timeout=10)  # fmt: skip


def test_an_etcd_that_will_not_start_fails_the_lab_clearly(lab: CLI) -> None:
    failed = lab.run("up", "-d", "--system", "etcd", "--system-bin", "/bin/false", check=False)
    assert failed.returncode == 3
    assert "etcd exited with code 1" in failed.stderr, failed.stderr
    assert not any(ns for ns in netns.lab_namespaces()
                   if psutil.pid_exists(int(ns[len(netns.PREFIX):].split("-")[0])))  # fmt: skip


@pytest.mark.parametrize("pre_vote", [False, True], ids=["etcd-default", "pre-vote"])
def test_a_healed_minority_deposes_the_leader_unless_pre_vote(lab: CLI, pre_vote: bool) -> None:
    """etcd 3.4 has pre-vote off: a member cut off from the others campaigns in higher and
    higher terms, and when the partition heals its term makes the leader step down.
    With `--etcd-pre-vote` it only asks, stays in the leader's term, and rejoins it."""
    lab.up("--system", "etcd", "-n", "3", *(["--etcd-pre-vote"] if pre_vote else []))
    old = wait_until(lambda: leader(lab), timeout=20)
    loner = next(n for n in ("r0", "r1", "r2") if n != old)
    rest = ",".join(n for n in ("r0", "r1", "r2") if n != loner)
    wait_until(lambda: all(n["leader"] == old for n in lab.status()["nodes"]), timeout=20)
    term = next(n["term"] for n in lab.status()["nodes"] if n["id"] == old)
    lab.run("fault", "partition", "--from", loner, "--to", rest)
    # Cut off for 3 to 4 election timeouts (1 s each, randomised up to 2 s).
    wait_until(lambda: next(n for n in lab.status()["nodes"] if n["id"] == loner)["role"]
               == "candidate", timeout=20)  # fmt: skip
    time.sleep(3.0)  # what a partition is: time passing with the link cut
    lab.run("fault", "heal")

    def settled() -> dict[str, Any] | None:
        nodes = lab.status()["nodes"]
        lead = [n for n in nodes if n["role"] == "leader"]
        if len(lead) == 1 and all(n["leader"] == lead[0]["id"] and n["term"] == lead[0]["term"]
                                  for n in nodes):  # fmt: skip
            return lead[0]
        return None

    now = wait_until(settled, timeout=30)
    log = (Path(lab.status()["run_dir"]) / "logs" / f"{loner}.etcd.log").read_text()
    assert f'"pre-vote":{str(pre_vote).lower()}' in log  # etcd's own word for its config
    if pre_vote:
        assert (now["id"], now["term"]) == (old, term), now
    else:
        assert now["term"] > term, now


def test_labs_started_at_the_same_instant_get_different_subnets(tmp_path: Path) -> None:
    """The subnet pick is atomic (netns.make under netns.claim): four processes making
    their namespaces at one instant get four subnets, and every one is removed."""
    import sys

    script = (
        "import os, sys, time\nfrom labctl.etcd import netns\n"
        "while time.time() < float(sys.argv[1]):\n    pass\n"  # the same instant for all
        "p = netns.make(str(os.getpid()), ['r0', 'r1', 'r2'])\n"
        "print(p.subnet, flush=True)\nsys.stdin.read()\nnetns.destroy(p)\n"
    )
    at = repr(time.time() + 3.0)
    procs = [subprocess.Popen([sys.executable, "-c", script, at], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(4)]  # fmt: skip
    subnets = []
    try:
        for p in procs:
            assert p.stdout is not None
            subnets.append(p.stdout.readline().strip())
    finally:
        for p in procs:
            p.communicate("", timeout=60)
    assert all(s.isdigit() for s in subnets) and len(set(subnets)) == 4, subnets
    tags = {str(p.pid) for p in procs}
    assert not [ns for ns in netns.lab_namespaces() if ns[len(netns.PREFIX):].split("-")[0]
                in tags]  # fmt: skip
