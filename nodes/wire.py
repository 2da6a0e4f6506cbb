"""The wire codec: msgpack of tagged msgspec Structs, never pickle.

A codec decodes exactly the union of the shared messages (client requests and replies,
broker writes and acks) and one protocol's peer messages; anything else raises
`WireError`, which the caller counts and drops.
"""

from __future__ import annotations

from typing import Any, Union

import msgspec

from protocols.base import SHARED_MESSAGES, Bundle


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

    def decode_all(self, raw: bytes) -> tuple[list[Any], int]:
        """The messages in one frame (a `Bundle` holds several) and how many of its items
        did not decode (counted by the caller, like any malformed message)."""
        msg = self.decode(raw)
        if not isinstance(msg, Bundle):
            return [msg], 0
        out, bad = [], 0
        for item in msg.items:
            try:
                inner = self._dec.decode(item)
            except (msgspec.DecodeError, msgspec.ValidationError):
                bad += 1
                continue
            if isinstance(inner, Bundle):
                bad += 1  # never nested
                continue
            out.append(inner)
        return out, bad

    def bundle(self, payloads: list[bytes]) -> bytes:
        """One frame carrying `payloads` (already encoded), for one destination."""
        return payloads[0] if len(payloads) == 1 else self._enc.encode(Bundle(payloads))


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

    def decode_log(self, payloads: list[bytes]) -> tuple[list[Any], bool]:
        """The records of a recovered log, and whether any were left out: a record that
        passed its checksum but does not decode was written by a different protocol, so
        decoding stops there (refuse to guess, keep what came before it)."""
        out = []
        for p in payloads:
            try:
                out.append(self.decode(p))
            except (msgspec.DecodeError, msgspec.ValidationError, WireError):
                return out, True
        return out, False
