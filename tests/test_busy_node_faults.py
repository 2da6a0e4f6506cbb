"""A node fault (clock, disk, byzantine) sent to a node that is busy is late, not a broken
lab: the node reads its control socket when its loop comes round again. Chaos runs met it
as "lab errors": a clock fault for a replica whose disk the lab had just stalled."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import CLI

SCENARIO = """
name = "stall-then-clock"
description = "a clock fault for a replica whose disk is stalled"
protocol = "epaxos"
nodes = 3
seed = 1
duration = "6s"

[workload]
kind = "kv"
rate = 200
target = "r0"
clients = 2

[[step]]
at = "1s"
fault = "disk"
node = "r0"
stall = "3s"

[[step]]
at = "1.5s"
fault = "clock"
node = "r0"
drift = 0.01
"""


def test_a_clock_fault_for_a_stalled_replica_applies_when_the_stall_ends(
    cli: CLI, tmp_path: Path
) -> None:
    path = tmp_path / "stall-then-clock.toml"
    path.write_text(SCENARIO)
    result = cli.run("scenario", "run", str(path), "--json", "--no-report", check=False,
                     timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]  # it was 3: "r0 did not answer"
    assert "unconfirmed: r0 is busy" in result.stderr
    summary = json.loads(result.stdout)
    log = Path(summary["run_dir"], "logs", "r0.log").read_text()
    # The node took both faults, the clock one once its stalled fsync returned.
    assert re.search(r"fault: disk .*stalled for 3s", log), log[-2000:]
    assert "fault: clock offset=+0s drift=+0.01" in log, log[-2000:]
