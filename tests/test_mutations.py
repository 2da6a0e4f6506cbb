"""Named mutations: the mechanism (declarations, validation of `mutate`) for every protocol."""

from __future__ import annotations

from typing import Any

import psutil
import pytest

import protocols
from protocols.base import ConfigError, decode_options
from protocols.base.mutations import Mutation, check_mutate
from tests.conftest import CLI


@pytest.mark.parametrize("name", protocols.available())
def test_every_protocol_declares_its_mutations_and_validates_the_field(name: str) -> None:
    cls = protocols.get(name)
    assert decode_options(cls.Options, {}).mutate == ""  # type: ignore[attr-defined]
    for m in cls.mutations:
        assert isinstance(m, Mutation) and m.target == "protocol"
        assert decode_options(cls.Options, {"mutate": m.name}).mutate == m.name  # type: ignore[attr-defined]
    with pytest.raises(ConfigError) as e:
        decode_options(cls.Options, {"mutate": "no-such-bug"})
    message = str(e.value)
    assert "no-such-bug" in message and name in message
    for m in cls.mutations:
        assert m.name in message  # the error lists what there is


def test_names_are_unique_per_protocol() -> None:
    for name in protocols.available():
        declared = [m.name for m in protocols.get(name).mutations]
        assert len(declared) == len(set(declared)), name


def test_raft_declares_the_first_two() -> None:
    declared = {m.name for m in protocols.get("raft").mutations}
    assert {"no-figure8", "forget-vote"} <= declared


def test_a_declaration_must_name_its_violation() -> None:
    with pytest.raises(ValueError):
        Mutation("x", "bug", "paper", violations=())
    with pytest.raises(ValueError):
        Mutation("Bad Name", "bug", "paper", violations=("split-brain",))
    check_mutate("raft", "", ())  # no mutation is always fine


# -- the lab: catalogue, configuration, CLI --------------------------------------------------


def test_the_catalogue_adds_the_lab_wide_mutations_to_each_protocols() -> None:
    from labctl import mutants

    raft = {m.name: m.target for m in mutants.catalogue("raft")}
    assert raft["no-figure8"] == "protocol" and raft["no-fencing"] == "broker"
    assert mutants.catalogue("naive")[0].name == "no-fencing"  # naive has none of its own


def test_configure_puts_a_protocol_mutation_into_the_options_and_names_it() -> None:
    from labctl import mutants

    c = mutants.configure({"protocol": "raft", "options": {"pre_vote": False},
                           "mutate": "forget-vote"})  # fmt: skip
    assert c["options"] == {"pre_vote": False, "mutate": "forget-vote"}
    assert c["mutate"] == "forget-vote" and mutants.target_of(c) == ("protocol", "forget-vote")
    # The option alone is the same thing.
    c = mutants.configure({"protocol": "raft", "options": {"mutate": "no-figure8"}})
    assert c["mutate"] == "no-figure8"
    # A broker mutation stays out of the protocol's options.
    c = mutants.configure({"protocol": "raft", "options": {}, "mutate": "no-fencing"})
    assert c["options"] == {} and mutants.target_of(c) == ("broker", "no-fencing")
    with pytest.raises(mutants.UnknownMutation, match="no-figure8"):
        mutants.configure({"protocol": "epaxos", "options": {}, "mutate": "no-figure8"})
    with pytest.raises(mutants.UnknownMutation, match="two mutations"):
        mutants.configure({"protocol": "raft", "options": {"mutate": "forget-vote"},
                           "mutate": "no-figure8"})  # fmt: skip


def test_broker_no_fencing_accepts_a_stale_token_although_fencing_is_on() -> None:
    from nodes.broker import Broker
    from protocols.base import BrokerWrite, Order

    order = Order(order_id="o1", user="u", side="buy", qty=1, symbol="ACME")

    def write(token: int) -> BrokerWrite:
        return BrokerWrite(token=token, node="r0", seq=1, request_id="c0-1", order=order)

    fenced, mutant = Broker(fencing=True), Broker(fencing=True, mutate="no-fencing")
    for b in (fenced, mutant):
        assert b.decide(write(3))
    assert not fenced.decide(write(2))  # Kleppmann's check
    assert mutant.decide(write(2))  # the mutation: the token is never compared
    with pytest.raises(ConfigError):
        Broker(fencing=True, mutate="no-figure8")


def test_a_scenario_names_its_mutation(tmp_path: Any) -> None:
    from labctl.scenario.format import ScenarioError, load

    path = tmp_path / "s.toml"
    path.write_text('name = "s"\nprotocol = "raft"\nmutate = "forget-term"\n')
    sc = load(path)
    assert sc.mutate == "forget-term" and sc.options["mutate"] == "forget-term"
    path.write_text('name = "s"\nprotocol = "raft"\nmutate = "forget-everything"\n')
    with pytest.raises(ScenarioError, match="mutate: raft has no mutation 'forget-everything'"):
        load(path)


def test_mutants_list_and_bad_names_on_the_cli(cli: CLI) -> None:
    rows = cli.json("mutants", "list", "--protocol", "raft")
    names = {r["name"] for r in rows}
    assert {"no-figure8", "forget-vote", "no-fencing"} <= names
    assert all(r["violations"] and r["source"] and r["bug"] for r in rows)
    for args in (["up", "-d", "-p", "raft", "--mutate", "nope"],
                 ["scenario", "run", "split-brain", "-p", "raft", "--mutate", "nope"],
                 ["chaos", "-p", "raft", "--mutate", "nope"]):  # fmt: skip
        result = cli.run(*args, check=False)
        assert result.returncode == 2, result.stderr
        line = result.stderr.strip()
        assert line.startswith("error: --mutate") and "no-figure8" in line, line


def test_a_lab_runs_with_its_mutation_and_says_so(cli: CLI) -> None:
    cli.up("-n", "3", "-p", "raft", "--mutate", "no-figure8")
    doc = cli.status()
    assert doc["mutate"] == "no-figure8"
    replicas = [p for p in doc["processes"].values() if p["kind"] == "replica"]
    for p in replicas:
        cmdline = " ".join(psutil.Process(p["pid"]).cmdline())
        assert '"mutate": "no-figure8"' in cmdline or '"mutate":"no-figure8"' in cmdline


# -- side effects at most once ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["raft", "epaxos"])
def test_a_retried_order_committed_twice_reaches_the_broker_once(name: str) -> None:
    from protocols.simnet import SimNet

    net = SimNet(protocols.get(name), 3, seed=4)
    net.run_for(1.0)
    first = net.leader() or "r0"
    rid = net.order(first, "o-1")
    net.run_until(lambda: net.reply_for(rid) is not None, 2.0)
    retry = next(s.msg.command for s in net.sent if getattr(s.msg, "command", None)
                 and s.msg.command.request_id == rid)  # fmt: skip
    net.request(net.leader() or "r1", retry)  # the client's retry: the same request again
    net.run_for(1.0)
    writes = [w for _, _, w in net.broker if w.request_id == rid]
    assert len(writes) == 1, writes


# -- lab-wide mutations in the simulator ------------------------------------------------------


def _sim(name: str, mutate: str, tmp_path: Any, protocol: str = "raft") -> set[str]:
    from labctl import simrun
    from labctl.scenario.format import set_mutation
    from labctl.scenario.library import resolve

    sc = resolve(name, protocol)
    if mutate:
        set_mutation(sc, mutate)
    _, summary = simrun.execute(sc, str(tmp_path), talk=False)
    return {v["kind"] for v in summary["violations"]}


def test_new_id_on_retry_buys_twice_when_acknowledgements_are_slow(tmp_path: Any) -> None:
    assert "duplicate-order" in _sim("slow-acks", "new-id-on-retry", tmp_path)
    assert _sim("slow-acks", "", tmp_path) == set()


def test_the_client_retry_keeps_its_id_unless_mutated() -> None:
    import random

    from nodes.operations import Client

    def client(mutate: str) -> tuple[Client, list[Any], list[dict[str, Any]]]:
        sent: list[Any] = []
        history: list[dict[str, Any]] = []
        c = Client(name="c0", replicas=["r0"], kind="orders", target="r0", reads=["log"],
                   keys=1, timeout=0.1, retries=3, max_inflight=4, rng=random.Random(1),
                   mutate=mutate)  # fmt: skip
        c.transmit = lambda node, request: sent.append(request)
        c.emit = lambda t, rec: history.append(rec)
        return c, sent, history

    for mutate in ("", "new-id-on-retry"):
        c, sent, history = client(mutate)
        c.start_op(0.0)
        c.on_timers(0.2)  # timed out: a retry is scheduled after a backoff
        c.on_timers(1.0)
        first, retry = sent[0].command, sent[1].command
        assert retry.order == first.order  # the same order either way
        assert (retry.request_id == first.request_id) == (mutate == "")
    kinds = [(r["type"], r["request_id"]) for r in history]
    assert kinds == [("invoke", first.request_id), ("info", first.request_id),
                     ("invoke", retry.request_id)]  # fmt: skip
    with pytest.raises(ConfigError):
        client("no-figure8")
