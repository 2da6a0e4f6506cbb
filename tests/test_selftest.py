"""`labctl selftest`: a CI-sized, simulator-only subset (a few mutations per protocol,
no real-process replays), and its command line."""

from __future__ import annotations

import pytest

from labctl.selftest import explore_one, selftest, table
from tests.conftest import CLI

SUBSET = ["forget-vote", "no-figure8", "drop-deps", "floor-quorum", "new-id-on-retry"]


@pytest.mark.slow
def test_a_few_mutations_per_protocol_are_caught_in_the_simulator() -> None:
    result = selftest(["raft", "epaxos", "pbft"], budget_s=20.0, replays=0, shrink_s=5.0,
                      mutations=SUBSET)  # fmt: skip
    rows = {r["mutation"]: r for r in result["rows"]}
    assert set(rows) == set(SUBSET)
    for name, row in rows.items():
        assert row["caught"], (name, row)
        assert row["kind"] in row["expected"], (name, row)
    assert result["ok"] and table(result)[-1] == "selftest: ok"


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["raft", "epaxos", "pbft"])
def test_the_correct_protocol_stays_clean_in_the_same_explore(protocol: str) -> None:
    row, found = explore_one(protocol, "", 15.0, 1, [4] if protocol == "pbft" else [3, 5])
    assert row.runs >= 1 and not row.caught and found is None, row


def test_selftest_refuses_what_it_does_not_know(cli: CLI) -> None:
    for args, message in ((["selftest", "-p", "nosuch"], "unknown protocol"),
                          (["selftest", "-m", "no-such-bug"], "--mutation: unknown"),
                          (["selftest", "--budget", "soon"], "bad --budget")):  # fmt: skip
        result = cli.run(*args, check=False)
        assert result.returncode == 2 and message in result.stderr, result.stderr
