"""SIGTERM to a running `labctl bench`: its labs go down and its temporary dirs go.

Found in a 30-minute soak stopped early: the soak (like the PBFT and sim benchmarks) did
not unwind on SIGTERM, so its lab went down only when the supervisor noticed its parent
had died, and the lab's temporary dir, 800 MB of record, stayed in /tmp. A SIGTERM while
the lab was still starting left it running: `api.up` had no Lab to give back yet, and the
half-started lab wrote its record into the dir the benchmark had just removed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.conftest import slack, wait_until


def _ours(root: Path) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(str(root) in a for a in p.info["cmdline"] or ()):
                found.append(p)
        except psutil.Error:
            pass
    return found


@pytest.mark.slow
def test_sigterm_to_a_soak_takes_its_lab_down_and_removes_its_dir(tmp_path: Path) -> None:
    env = dict(os.environ, TMPDIR=str(tmp_path), LABCTL_SOAK_PROTOCOLS="naive",
               LABCTL_SOAK_SECONDS="600")  # fmt: skip
    env.pop("LABCTL_BENCH_KEEP", None)
    env.pop("LABCTL_LAB_KEY", None)  # as from a user's shell
    proc = subprocess.Popen(
        [sys.executable, "-m", "labctl.cli.main", "bench", "soak"], env=env, cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        # The lab is up and the workload running once its first sample is printed.
        wait_until(lambda: any(tmp_path.glob("labctl-bench-naive-*/lab/runs/*/history.jsonl")),
                   timeout=30)  # fmt: skip
        wait_until(lambda: len(_ours(tmp_path)) >= 4, timeout=30)  # supervisor, replicas...
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=slack(15))
        assert proc.returncode != 0  # stopped, not finished
        wait_until(lambda: not _ours(tmp_path), timeout=10)
        assert list(tmp_path.glob("labctl-bench-*")) == []
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for p in _ours(tmp_path):
            p.kill()
