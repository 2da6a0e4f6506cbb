"""PBFT in the real lab: 4 replicas by default, clients that believe f+1 matching replies,
and lying replicas (`labctl fault byzantine`) that the honest ones survive."""

from __future__ import annotations

import json
from pathlib import Path

from labctl.checkers import check_run_dir
from tests.conftest import CLI, wait_until
from tui.source import LiveSource


def nodes(cli: CLI) -> dict[str, dict]:
    return {n["id"]: n for n in cli.status()["nodes"]}


def test_one_liar_out_of_four_is_outvoted_and_voted_out(cli: CLI) -> None:
    cli.up("-p", "pbft")
    assert sorted(nodes(cli)) == ["r0", "r1", "r2", "r3"]
    wait_until(lambda: nodes(cli)["r0"]["role"] == "primary", timeout=3)
    wait_until(lambda: nodes(cli)["r1"]["role"] == "backup", timeout=3)

    put = cli.json("client", "put", "x", "1")
    assert put["status"] == "ok" and len(put["agreed"]) >= 2  # f+1 matching replies

    # A forger answers clients with values it never computed: outvoted.
    cli.run("fault", "byzantine", "r3", "--mode", "forge")
    got = cli.json("client", "get", "x")
    assert got["status"] == "ok" and got["value"] == "1" and "r3" not in got["agreed"]
    cli.run("fault", "byzantine", "r3", "--mode", "honest")

    # An equivocating primary: no request gathers a quorum, the backups change view.
    cli.run("fault", "byzantine", "primary", "--mode", "equivocate")
    # Status telemetry is published at most every 50 ms: the liar shows up shortly.
    wait_until(lambda: nodes(cli)["r0"]["byzantine"] == "equivocate", timeout=3)
    put = cli.json("client", "put", "x", "2", "--timeout", "5s")
    assert put["status"] == "ok"
    # An honest replica leads a later view (r1, unless the change cascaded further).
    wait_until(
        lambda: any(
            n != "r0" and s["role"] == "primary" and s["view"] >= 1 for n, s in nodes(cli).items()
        ),
        timeout=5,
    )
    assert cli.json("client", "get", "x")["value"] == "2"
    listed = cli.json("fault", "list", "--json")
    assert any("byzantine r0 mode=equivocate" in f["describe"] for f in listed)

    status = cli.status()
    assert not status["violations"]
    run = Path(status["run_dir"])
    cli.run("down")
    verdict = check_run_dir(run)
    assert verdict["safe"], verdict["violations"]


def test_byzantine_faults_need_a_protocol_that_has_them(cli: CLI) -> None:
    cli.up("-n", "3", "-p", "raft")
    result = cli.run("fault", "byzantine", "r0", "--mode", "silent", check=False)
    assert result.returncode == 2 and "has no byzantine modes" in result.stderr
    result = cli.run("fault", "byzantine", "r9", "--mode", "silent", check=False)
    assert result.returncode == 2 and "r9" in result.stderr
    result = cli.run("fault", "byzantine", "r0", check=False)
    assert result.returncode == 2 and "--mode" in result.stderr
    assert cli.status()["nodes"][0]["state"] == "running"


def test_the_dashboards_order_key_needs_f_plus_1_matching_replies(cli: CLI) -> None:
    """The dashboard's order goes the one client path (nodes/client.py through
    Lab.order): to every replica, believed on f+1 matching replies, so a forger that
    answers first is outvoted, and recorded in the history as sent to all."""
    cli.up("-p", "pbft")
    wait_until(lambda: nodes(cli)["r0"]["role"] == "primary", timeout=3)
    cli.run("fault", "byzantine", "r3", "--mode", "forge")
    source = LiveSource(cli.lab_dir)
    try:
        out = source.order("r3", "riya", "buy", 7)  # the node asked is the liar
    finally:
        source.session.close()
    assert out["status"] == "ok" and len(out["agreed"]) >= 2 and "r3" not in out["agreed"]
    history = Path(cli.status()["run_dir"], "history.jsonl")
    wait_until(lambda: history.exists() and '"op":"order"' in history.read_text(), timeout=3)
    records = [json.loads(line) for line in history.read_text().splitlines()]
    orders = [r for r in records if r.get("op") == "order"]
    assert [r["type"] for r in orders] == ["invoke", "ok"]
    assert {r["node"] for r in orders} == {"all"} and orders[0]["process"].startswith("dash-")
