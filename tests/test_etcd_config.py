"""What a user hears before an etcd lab starts, without etcd or root: the install command
when the binary is missing, root when namespaces cannot be made, and a scenario's faults
and workload that etcd cannot take refused with the reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from labctl.etcd import INSTALL, SystemConfigError, netns, system_config
from labctl.scenario.format import ScenarioError, load


def test_missing_binary_names_the_install_command() -> None:
    with pytest.raises(SystemConfigError) as e:
        system_config("etcd", "/nonexistent/etcd", check_host=False)
    assert INSTALL in str(e.value)


def test_unknown_system_is_refused() -> None:
    with pytest.raises(SystemConfigError, match="--system must be one of etcd"):
        system_config("zookeeper", check_host=False)


def test_not_root_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    problem = netns.problem()
    assert problem is not None and "root" in problem


def scenario(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text('name = "s"\nnodes = 3\nduration = "5s"\n' + body)
    return path


def test_scenario_on_etcd_takes_one_attempt_per_operation(tmp_path: Path) -> None:
    if shutil.which("etcd") is None:
        pytest.skip("etcd is not installed (apt-get install -y etcd-server etcd-client)")
    sc = load(scenario(tmp_path, '[system]\nname = "etcd"\n[workload]\nkind = "kv"\n'
                       "rate = 50\nretries = 3\n"))  # fmt: skip
    assert sc.protocol == "etcd" and sc.system is not None
    assert sc.workload is not None and sc.workload["retries"] == 0


@pytest.mark.parametrize("step, why", [
    ('fault = "disk"\nnode = "leader"\nfsync = "10ms"', "own fsyncs"),
    ('fault = "clock"\nnode = "leader"\noffset = "1s"', "libfaketime"),
    ('fault = "kill"\nnode = "leader"\npower_loss = true', "fsynced"),
])  # fmt: skip
def test_scenario_faults_etcd_cannot_take_are_refused(tmp_path: Path, step: str, why: str) -> None:
    if shutil.which("etcd") is None:
        pytest.skip("etcd is not installed (apt-get install -y etcd-server etcd-client)")
    body = f'[system]\nname = "etcd"\n[[step]]\nat = "1s"\n{step}\n'
    with pytest.raises(ScenarioError, match=why):
        load(scenario(tmp_path, body))


def etcd_command(system: dict) -> list[str]:
    """The etcd command line a member of a lab with this system mapping runs, as the
    supervisor builds it (labctl/etcd) and the member reads it (nodes/etcd/member.py)."""
    from labctl.etcd import EtcdNodes
    from nodes.etcd import member

    nodes = EtcdNodes(system, ["r0", "r1", "r2"], "7")
    members = tuple(netns.Member(f"r{i}", f"labctl-7-r{i}", f"lc7-{i}h", f"lc7-{i}n",
                                 f"10.213.9.{4 * i + 1}", f"10.213.9.{4 * i + 2}")
                    for i in range(3))  # fmt: skip
    nodes.plan = netns.Plan("7", 9, "lc7px", "10.213.9.254", members)
    argv = nodes.member_argv("r1", "tcp://127.0.0.1:1", "tcp://127.0.0.1:2", Path("/run"), 1)
    assert argv[:2] == ["-m", "nodes.etcd.member"]
    return member.etcd_argv(member.parse_args(argv[2:]))


def test_pre_vote_is_off_as_in_etcd_and_on_when_asked() -> None:
    if shutil.which("etcd") is None:
        pytest.skip("etcd is not installed (apt-get install -y etcd-server etcd-client)")
    plain = etcd_command(system_config("etcd", check_host=False))
    assert not any(a.startswith("--pre-vote") for a in plain)
    asked = etcd_command(system_config("etcd", check_host=False, pre_vote=True))
    assert "--pre-vote=true" in asked
    assert asked[asked.index("--name") + 1] == "r1"


def test_scenario_system_table_takes_pre_vote(tmp_path: Path) -> None:
    if shutil.which("etcd") is None:
        pytest.skip("etcd is not installed (apt-get install -y etcd-server etcd-client)")
    sc = load(scenario(tmp_path, '[system]\nname = "etcd"\npre_vote = true\n'))
    assert sc.system is not None and sc.system["pre_vote"] is True
    assert load(scenario(tmp_path, '[system]\nname = "etcd"\n')).system["pre_vote"] is False
    with pytest.raises(ScenarioError, match="pre_vote must be true or false"):
        load(scenario(tmp_path, '[system]\nname = "etcd"\npre_vote = "yes"\n'))
    with pytest.raises(ScenarioError, match="known: binary, name, pre_vote"):
        load(scenario(tmp_path, '[system]\nname = "etcd"\nprevote = true\n'))


def test_up_refuses_etcd_pre_vote_without_etcd(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = dict(os.environ, LABCTL_DIR=str(tmp_path / "lab"))
    done = subprocess.run([sys.executable, "-m", "labctl.cli.main", "up", "-d",
                           "--etcd-pre-vote"], capture_output=True, text=True, env=env,
                          timeout=60)  # fmt: skip
    assert done.returncode != 0 and "--etcd-pre-vote is for --system etcd" in done.stderr
    assert not (tmp_path / "lab" / "state.json").exists()


def test_the_subnet_claim_is_exclusive_and_dies_with_its_holder(tmp_path: Path) -> None:
    """Two labs started at once pick their 10.213.K under netns.claim: while one holds
    it another waits (and gives up with a clear error), and a holder killed with
    SIGKILL releases it at once (flock: no stale claim to clean up)."""
    import subprocess
    import sys

    lock = tmp_path / "netns.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom labctl.etcd import netns\n"
         f"with netns.claim({str(lock)!r}):\n    print('held', flush=True)\n"
         "    time.sleep(60)\n"], stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(netns.NetnsError, match="another etcd lab has held"), \
                netns.claim(str(lock), wait=0.5):  # fmt: skip
            pass
    finally:
        holder.kill()
        holder.wait()
    with netns.claim(str(lock), wait=5.0):
        pass  # free again: the kernel released the dead holder's lock
