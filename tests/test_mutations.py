"""Named mutations: the mechanism (declarations, validation of `mutate`) for every protocol."""

from __future__ import annotations

import pytest

import protocols
from protocols.base import ConfigError, decode_options
from protocols.base.mutations import Mutation, check_mutate


@pytest.mark.parametrize("name", list(protocols.REGISTRY))
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
    for name in protocols.REGISTRY:
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
