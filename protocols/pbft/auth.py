"""Message authentication: HMAC-SHA256 with a per-sender key.

Each replica's key is sha256(lab key | replica id), and a signature is the HMAC of the
canonical msgpack encoding of a message's first `SIGNED` fields (its type name first, so a
prepare can never pass for a commit). Every replica can derive every key here, which is
what a lab needs and a deployment would not do: the guarantee that matters is that the
protocol, honest or byzantine (byzantine.py), only ever signs with its OWN key
(`Signer.sign` refuses any other sender), so a liar cannot put words in a correct
replica's mouth, and certificates it forwards are checked message by message.

A message that verified once verifies again: `verify` remembers the last few thousand it
accepted (per lab key, so per set of replica keys) and accepts an equal message without
the HMAC. In the simulator a broadcast is one object that every receiver verifies, and
certificates carry votes their receivers verified already; a replica process sees the
same for retransmissions. The answer is the one the HMAC would give (an equal message has
the same signed fields, sender and signature), so this changes what it costs, not what
it decides.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TypeVar

import msgspec

T = TypeVar("T", bound=msgspec.Struct)

_encode = msgspec.msgpack.encode
try:  # hmac.digest's own fast path, without its Python frame (the same bytes)
    from _hashlib import hmac_digest as _hmac_digest
except ImportError:  # pragma: no cover - a Python built without OpenSSL
    _hmac_digest = hmac.digest

VERIFIED_CAP = 4096  # messages remembered as verified, per lab key
# lab key -> signature -> the message that verified with it. Shared by the Signers of one
# lab key: their keys are the same derivations of it.
_verified: dict[str, dict[bytes, msgspec.Struct]] = {}


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
        self._verified = _verified.setdefault(lab_key, {})

    def sign(self, msg: T) -> T:
        if msg.sender != self.me:  # type: ignore[attr-defined]
            raise ValueError(f"{self.me} cannot sign as {msg.sender}")  # type: ignore[attr-defined]
        sig = _hmac_digest(self._mine, signed_body(msg), "sha256")
        return msgspec.structs.replace(msg, sig=sig)

    def verify(self, msg: msgspec.Struct) -> bool:
        key = self._keys.get(getattr(msg, "sender", ""))
        if key is None:
            return False
        sig = msg.sig  # type: ignore[attr-defined]
        seen = self._verified.get(sig)
        if seen is not None and (seen is msg or seen == msg):
            return True  # verified before: same fields, same sender, same signature
        expected = _hmac_digest(key, signed_body(msg), "sha256")
        if not hmac.compare_digest(expected, sig):
            return False
        if len(self._verified) >= VERIFIED_CAP:
            self._verified.clear()
        self._verified[sig] = msg
        return True
