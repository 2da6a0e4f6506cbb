"""The contract between protocols and the lab: inputs, Ready, shared messages, units."""

from protocols.base.contract import (
    Committed,
    ConfigError,
    Event,
    NodeConfig,
    Protocol,
    ReadReady,
    Ready,
    SnapshotImage,
    client_quorum,
    reply,
    request_problem,
)
from protocols.base.durations import DurationError, format_duration, parse_duration
from protocols.base.options import decode_options
from protocols.base.wire import (
    OPS,
    READ_MODES,
    SHARED_MESSAGES,
    BrokerAck,
    BrokerWrite,
    Bundle,
    ClientReply,
    ClientRequest,
    Command,
    Order,
)
from protocols.display import Column, Display, Role

__all__ = [
    "OPS",
    "READ_MODES",
    "SHARED_MESSAGES",
    "BrokerAck",
    "BrokerWrite",
    "Bundle",
    "ClientReply",
    "ClientRequest",
    "Column",
    "Command",
    "Committed",
    "ConfigError",
    "Display",
    "DurationError",
    "Event",
    "NodeConfig",
    "Order",
    "Protocol",
    "ReadReady",
    "Ready",
    "Role",
    "SnapshotImage",
    "client_quorum",
    "decode_options",
    "format_duration",
    "parse_duration",
    "reply",
    "request_problem",
]
