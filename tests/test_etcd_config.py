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
