"""docs/scenarios.md is the scenario format's reference: its complete example parses, and
it names every key the parser accepts (a key added to the format must be documented)."""

from __future__ import annotations

import re
from pathlib import Path

from labctl.scenario.format import EXPECT_KEYS, TOP_KEYS, WORKLOAD_KEYS, parse

DOC = Path(__file__).resolve().parent.parent / "docs" / "scenarios.md"


def example() -> str:
    text = DOC.read_text()
    section = text[text.index("## A complete example") :]
    return re.search(r"```toml\n(.*?)```", section, re.S).group(1)


def test_the_reference_example_parses_as_documented() -> None:
    import tomllib

    sc = parse(tomllib.loads(example()), "docs/scenarios.md")
    assert (sc.name, sc.protocol, sc.nodes, sc.seed, sc.duration) == (
        "leader-cut-off", "raft", 5, 7, 10.0,
    )  # fmt: skip
    assert sc.options == {"heartbeat_interval": "50ms", "election_timeout": "200ms"}
    assert sc.fencing and sc.workload is not None and sc.workload["clients"] == 2
    assert [(s.at, s.fault["fault"]) for s in sc.steps] == [
        (2.0, "partition"), (3.0, "delay"), (5.0, "heal"), (6.0, "pause"),
    ]  # fmt: skip
    # [expect.<protocol>] overlays [expect] key by key, as the reference says.
    assert sc.expectations("raft") == {"min_ok": 200, "max_info": 100, "safe": True}
    assert sc.expectations("naive") == {"min_ok": 200, "max_info": 100, "found": ["split-brain"]}
    # nothing about safety for epaxos: held to safe = true (naive is unsafe by design)
    assert sc.expectations("epaxos") == {"min_ok": 200, "max_info": 100, "safe": True}
    naive = parse(tomllib.loads(example()), "docs/scenarios.md", protocol="naive")
    assert naive.options == {"heartbeat_interval": "50ms"}  # [options.raft] is raft's only


def test_the_reference_names_every_key_the_parser_accepts() -> None:
    text = DOC.read_text()
    for key in TOP_KEYS | WORKLOAD_KEYS | EXPECT_KEYS:
        assert f"`{key}`" in text or f"[{key}]" in text or f"[[{key}]]" in text, key
