"""Raft's options and class attributes: validation up front, the wire and WAL types."""

from __future__ import annotations

import math
from typing import Union

import msgspec
import pytest

import protocols
from protocols.base import Command, ConfigError, decode_options
from protocols.raft import Options, RaftProtocol
from protocols.raft.messages import (
    AppendEntries,
    AppendResponse,
    Entry,
    HardState,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    LogEntries,
    RequestVote,
    SnapshotRecord,
    VoteResponse,
)


def test_defaults() -> None:
    opts = Options()
    assert (opts.election_timeout, opts.heartbeat_interval) == (0.15, 0.05)
    assert opts.pre_vote and opts.check_quorum
    assert opts.max_drift == 0.05
    assert opts.lease_duration == pytest.approx(0.15 / 1.05)
    opts.validate()


def test_durations_parse_from_user_text() -> None:
    opts = decode_options(
        Options,
        {"election-timeout": "300ms", "heartbeat_interval": "0.1s", "pre_vote": "off"},
    )
    assert isinstance(opts, Options)
    assert (opts.election_timeout, opts.heartbeat_interval, opts.pre_vote) == (0.3, 0.1, False)
    assert decode_options(Options, {"max_inflight": "8"}).max_inflight == 8  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ({"heartbeat_interval": "150ms"}, "heartbeat_interval"),  # == election timeout
        ({"heartbeat_interval": "1s"}, "heartbeat_interval"),  # above it
        ({"election_timeout": 0}, "election_timeout"),
        ({"heartbeat_interval": 0}, "heartbeat_interval"),
        ({"election_timeout": math.inf}, "election_timeout"),
        ({"max_drift": 1.0}, "max_drift"),
        ({"max_drift": -0.1}, "max_drift"),
        ({"max_batch": 0}, "max_batch"),
        ({"max_inflight": 0}, "max_inflight"),
        ({"snapshot_threshold": 0}, "snapshot_threshold"),
        ({"election_timout": "1s"}, "election_timout"),  # a typo is not ignored
        ({"election_timeout": "soon"}, "election_timeout"),
        ({"max_batch": "many"}, "max_batch"),
    ],
)
def test_nonsense_is_refused_naming_the_option(raw: dict[str, object], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        decode_options(Options, raw)


def test_the_registry_finds_raft() -> None:
    assert protocols.get("raft") is RaftProtocol
    assert "raft" in protocols.available()


def test_class_attributes() -> None:
    assert RaftProtocol.name == "raft"
    assert RaftProtocol.description
    assert RaftProtocol.default_nodes == 3
    assert RaftProtocol.exactly_once is True
    assert RaftProtocol.Options is Options


@pytest.mark.parametrize("kind", ["messages", "records"])
def test_wire_and_wal_types_are_tagged_frozen_structs(kind: str) -> None:
    types = getattr(RaftProtocol, kind)
    tags = set()
    for t in types:
        config = t.__struct_config__
        assert issubclass(t, msgspec.Struct) and config.frozen and config.tag == t.__name__
        tags.add(config.tag)
    assert len(tags) == len(types)
    # A union of them decodes without guessing, as the runtime's codecs do.
    decoder = msgspec.msgpack.Decoder(Union[types])  # noqa: UP007
    encoder = msgspec.msgpack.Encoder()
    for t in types:
        sample = SAMPLES[t.__name__]
        assert decoder.decode(encoder.encode(sample)) == sample


SAMPLES = {
    "RequestVote": RequestVote(3, 7, 2, pre_vote=True),
    "VoteResponse": VoteResponse(3, True),
    "AppendEntries": AppendEntries(
        3, 1, 1, (Entry(2, 2, Command("r", "c", "put", "k", "v")),), 1, 4
    ),
    "AppendResponse": AppendResponse(3, False, 9, 4, 1, 2),
    "Heartbeat": Heartbeat(3, 1, 5),
    "HeartbeatResponse": HeartbeatResponse(3, 5),
    "InstallSnapshot": InstallSnapshot(3, 10, 2, b"image"),
    "HardState": HardState(3, "r1"),
    "LogEntries": LogEntries((Entry(1, 1), Entry(1, 2))),
    "SnapshotRecord": SnapshotRecord(10, 2, b"image"),
}
