"""Message authentication: HMAC-SHA256 with a per-sender key.

Each replica's key is sha256(lab key | replica id), and a signature is the HMAC of the
canonical msgpack encoding of a message's first `SIGNED` fields (its type name first, so a
prepare can never pass for a commit). Every replica can derive every key here, which is
what a lab needs and a deployment would not do: the guarantee that matters is that the
protocol, honest or byzantine (byzantine.py), only ever signs with its OWN key
(`Signer.sign` refuses any other sender), so a liar cannot put words in a correct
replica's mouth, and certificates it forwards are checked message by message.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TypeVar

import msgspec

T = TypeVar("T", bound=msgspec.Struct)

_encode = msgspec.msgpack.encode


def derive_key(lab_key: str, replica: str) -> bytes:
    return hashlib.sha256(f"{lab_key}\0{replica}".encode()).digest()


def signed_body(msg: msgspec.Struct) -> bytes:
    fields = msgspec.structs.astuple(msg)[: type(msg).SIGNED]  # type: ignore[attr-defined]
    return _encode((type(msg).__name__, *fields))


class Signer:
    """Signs as `me`; verifies anyone's signature."""

    def __init__(self, lab_key: str, me: str, replicas: tuple[str, ...]) -> None:
        self.me = me
        self._keys = {r: derive_key(lab_key, r) for r in replicas}
        self._mine = self._keys[me]

    def sign(self, msg: T) -> T:
        if msg.sender != self.me:  # type: ignore[attr-defined]
            raise ValueError(f"{self.me} cannot sign as {msg.sender}")  # type: ignore[attr-defined]
        sig = hmac.digest(self._mine, signed_body(msg), "sha256")
        return msgspec.structs.replace(msg, sig=sig)

    def verify(self, msg: msgspec.Struct) -> bool:
        key = self._keys.get(getattr(msg, "sender", ""))
        if key is None:
            return False
        expected = hmac.digest(key, signed_body(msg), "sha256")
        return hmac.compare_digest(expected, msg.sig)  # type: ignore[attr-defined]
