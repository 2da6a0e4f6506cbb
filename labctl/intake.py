"""What the supervisor accepts from outside: telemetry messages and history records, typed.

Every child (and anything else that finds the endpoint on a command line) can push to the
telemetry socket, so a message is data until it has been decoded here: an envelope (src,
kind, finite t, a map), the payload of the kinds the supervisor acts on in typed structs,
and everything else checked to be JSON-plain (`nodes.inbound.plain`), since it goes into
events.jsonl, the status answer and summary.json as it is. `decode_telemetry` raises
`Rejected` with the drop kind; the supervisor counts it and goes on.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from nodes.inbound import DECODE_ERRORS, Name, plain

Time = Annotated[float, msgspec.Meta(ge=-1e12, le=1e12)]  # finite: nan and inf fail both
Scalar = int | float | str | bool | None
RESERVED = frozenset({"t", "src", "kind"})  # a record's own fields: data may not shadow them
HISTORY_TYPES = ("invoke", "ok", "fail", "info")


class Rejected(ValueError):
    """A message that does not fit; `kind` names why (the drop counter's key)."""

    def __init__(self, kind: str, detail: object = "") -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class _Envelope(msgspec.Struct):
    src: Name
    kind: Name
    t: Time
    data: msgspec.Raw


class AppliedBatch(msgspec.Struct):
    """A replica's applied commands: `rows` as events.APPLIED_ROW, `entries` from a restore."""

    entries: list[dict[str, Scalar]] = []
    rows: list[list[Scalar]] = []


class _Endpoints(msgspec.Struct):
    """router.ready: where the data plane and the router's control socket are."""

    data: Name
    control: Name


class _Control(msgspec.Struct):
    """node.ready, node.loaded, broker.ready: the process's control socket."""

    control: Name | None = None


class _History(msgspec.Struct):
    """The fields of a history record the supervisor and the checkers key on."""

    type: Literal["invoke", "ok", "fail", "info"]
    request_id: Name
    t: Time | None = None


class WorkloadSpec(msgspec.Struct, forbid_unknown_fields=True):
    """The `workload start` request's spec (the scenario runner's [workload], the
    dashboard's form, the checkers benchmark): every value bounded before a client
    process is started with it."""

    # kv, orders, mixed; or Maelstrom's workloads, for external nodes (labctl/external.py)
    kind: Literal[
        "kv", "orders", "mixed", "lin-kv", "broadcast", "g-counter", "unique-ids", "echo"
    ] = "kv"
    rate: Annotated[float, msgspec.Meta(gt=0, le=20_000)] = 10.0  # operations/s, all clients
    clients: Annotated[int, msgspec.Meta(ge=1, le=16)] = 1
    target: Name = "leader"  # leader, any or a replica (the client checks which)
    reads: Annotated[str, msgspec.Meta(pattern=r"^(log|quorum|lease)(,(log|quorum|lease))*$")] = (
        "log"
    )
    keys: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 5
    timeout: Annotated[float, msgspec.Meta(gt=0, le=60)] = 0.25  # seconds per attempt
    retries: Annotated[int, msgspec.Meta(ge=0, le=20)] = 3
    duration: Annotated[float, msgspec.Meta(gt=0, le=86_400)] | None = None  # seconds
    settle: Annotated[float, msgspec.Meta(ge=0, le=60)] = 2.0  # external: before final reads


def workload_spec(spec: Any) -> WorkloadSpec:
    """Raises Rejected with msgspec's words for what is wrong (`at $.clients`)."""
    try:
        return msgspec.convert(spec, WorkloadSpec)
    except msgspec.ValidationError as e:
        raise Rejected("bad_workload", f"bad workload spec: {e}") from None


_envelope = msgspec.msgpack.Decoder(_Envelope)
_applied = msgspec.msgpack.Decoder(AppliedBatch)
_mapping = msgspec.msgpack.Decoder(dict[str, Any])
_TYPED = {"router.ready": _Endpoints, "node.ready": _Control, "node.loaded": _Control,
          "broker.ready": _Control, "history": _History}  # fmt: skip


def decode_telemetry(raw: bytes) -> tuple[str, str, float, Any]:
    """(src, kind, t, data) of one telemetry message; data is an AppliedBatch for
    "applied.batch", a JSON-plain dict otherwise. Raises Rejected."""
    try:
        env = _envelope.decode(raw)
    except DECODE_ERRORS as e:
        raise Rejected("bad_envelope", e) from None
    if env.kind == "applied.batch":
        try:
            return env.src, env.kind, env.t, _applied.decode(env.data)
        except DECODE_ERRORS as e:
            raise Rejected("bad_applied", e) from None
    try:
        data = _mapping.decode(env.data)
    except DECODE_ERRORS as e:
        raise Rejected("bad_data", e) from None
    check_record(data, env.kind)
    return env.src, env.kind, env.t, data


def check_record(data: dict[str, Any], kind: str) -> None:
    """A map from outside that is about to be written and acted on: JSON-plain, not
    shadowing a record's own fields, and typed where `kind` has a schema."""
    if not plain(data):
        raise Rejected("not_plain", f"{kind}: keys must be strings, values JSON data")
    if kind != "history" and not RESERVED.isdisjoint(data):
        raise Rejected("reserved_key", f"{kind}: data names {sorted(RESERVED & set(data))}")
    schema = _TYPED.get(kind)
    if schema is not None:
        try:
            msgspec.convert(data, schema)
        except msgspec.ValidationError as e:
            raise Rejected(f"bad_{kind}", e) from None


def history_record(record: Any) -> dict[str, Any]:
    """A complete history.jsonl record given on the control socket (`labctl client`):
    it carries its own t and process. Raises Rejected."""
    if not isinstance(record, dict):
        raise Rejected("bad_history", "a history record must be a mapping")
    check_record(record, "history")
    if not isinstance(record.get("t"), (int, float)) or isinstance(record.get("t"), bool):
        raise Rejected("bad_history", "a history record needs a finite number 't'")
    return record
