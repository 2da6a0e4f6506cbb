"""The wire codec: msgpack of tagged msgspec Structs, never pickle.

A codec decodes exactly the union of the shared messages (client requests and replies,
broker writes and acks) and one protocol's peer messages; anything else raises
`WireError`, which the caller counts and drops.
"""

from __future__ import annotations

from typing import Any, Union

import msgspec

from protocols.base import SHARED_MESSAGES


class WireError(ValueError):
    pass


class Codec:
    def __init__(self, types: tuple[type[msgspec.Struct], ...] = ()) -> None:
        union: tuple[type, ...] = tuple(dict.fromkeys(SHARED_MESSAGES + tuple(types)))
        self._enc = msgspec.msgpack.Encoder()
        self._dec = msgspec.msgpack.Decoder(Union[union] if len(union) > 1 else union[0])  # noqa: UP007

    def encode(self, msg: msgspec.Struct) -> bytes:
        return self._enc.encode(msg)

    def decode(self, raw: bytes) -> Any:
        try:
            return self._dec.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise WireError(str(e)) from None


class RecordCodec:
    """Codec for a protocol's durable records (the WAL's payloads)."""

    def __init__(self, types: tuple[type[msgspec.Struct], ...]) -> None:
        self._enc = msgspec.msgpack.Encoder()
        self._dec = (
            msgspec.msgpack.Decoder(Union[tuple(types)] if len(types) > 1 else types[0])  # noqa: UP007
            if types
            else None
        )

    def encode(self, record: msgspec.Struct) -> bytes:
        return self._enc.encode(record)

    def decode(self, raw: bytes) -> Any:
        if self._dec is None:
            raise WireError("this protocol persists nothing")
        return self._dec.decode(raw)
