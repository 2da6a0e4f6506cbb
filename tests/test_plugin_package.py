"""A protocol from outside the repository, as a contributor ships one: the package in
tests/plugin_example (its own pyproject.toml, one entry point) pip-installed into a fresh
virtual environment, then the lab driven through the CLI with `-p pb` alone: up, status,
client put/get, a fault, down, a built-in scenario (held to safe = true: pb does not
declare itself unsafe), the simulator and a short chaos run.

The fresh environment sees this one's packages (labctl and its dependencies) through a
.pth file, so the test installs only the plugin, without a network. Every process it
starts runs that environment's python: teardown kills whatever is left of them."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.conftest import CLI

PLUGIN = Path(__file__).parent / "plugin_example"

pytestmark = pytest.mark.slow


class VenvCLI(CLI):
    """`labctl` run by another environment's python."""

    def __init__(self, lab_dir: Path, python: Path) -> None:
        super().__init__(lab_dir)
        self.python = python

    def run(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        env = dict(os.environ, LABCTL_DIR=str(self.lab_dir))
        proc = subprocess.run([str(self.python), "-m", "labctl.cli.main", *args],
                              capture_output=True, text=True, env=env, timeout=timeout)  # fmt: skip
        if check and proc.returncode != 0:
            raise AssertionError(f"labctl {' '.join(args)} exited {proc.returncode}\n"
                                 f"stdout: {proc.stdout}\nstderr: {proc.stderr}")  # fmt: skip
        return proc


def said(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout + proc.stderr


def _kill_everything_run_by(venv: Path) -> None:
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info.get("cmdline") or []
        if cmd and cmd[0].startswith(str(venv)):
            try:
                p.kill()
            except psutil.Error:
                pass


@pytest.fixture
def venv(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(root),
                                                    "platbase": str(root)}))  # fmt: skip
    # This environment's packages, editable installs included (addsitedir runs their .pth).
    here = sysconfig.get_path("purelib")
    (site / "labctl-env.pth").write_text(f"import site; site.addsitedir({here!r})\n")
    python = root / "bin" / "python"
    try:
        # pip from this environment, installing into the new one (its --python option).
        subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                        "--quiet", "--no-deps", str(PLUGIN)], check=True, timeout=600)  # fmt: skip
        yield python
    finally:
        _kill_everything_run_by(root)


def test_an_installed_plugin_runs_under_every_command(venv: Path, tmp_path: Path) -> None:
    cli = VenvCLI(tmp_path / "lab", venv)
    try:
        assert "pb " in cli.run("protocols").stdout
        cli.up("-p", "pb")
        status = cli.run("status").stdout
        assert "pb · 3 replicas" in status and "view" in status.splitlines()[1]
        doc = cli.status()
        assert doc["leaders"] == ["r0"] and doc["display"]["leader_word"] == "primary"
        assert "ok from r0" in cli.run("client", "put", "x", "1").stdout
        assert "value=1" in cli.run("client", "get", "x").stdout
        cli.run("fault", "isolate", "leader")
        cli.run("fault", "heal")
        cli.run("down")
        # A built-in scenario, run on the plugin: judged safe = true though it says nothing
        # about pb (its protocol declares no unsafe_by_design).
        out = said(cli.run("scenario", "run", "minority-partition", "-p", "pb"))
        assert "met      safe" in out and "verdict: pass" in out
        assert "verdict: pass" in said(cli.run("sim", "run", "split-brain", "-p", "pb"))
        out = said(cli.run("chaos", "-p", "pb", "--runs", "1", "--duration", "6s", "--nodes", "3"))
        assert "chaos 1/1" in out and "violations: none" in out
        # Unknown names stay one-line errors, naming what is available (pb among them).
        bad = cli.run("up", "-d", "-p", "nosuch", check=False)
        assert bad.returncode == 2 and "available: naive, raft, epaxos, pbft, pb" in bad.stderr
    finally:
        cli.cleanup()
