"""The fault vocabulary: one definition of every fault, shared by CLI, scenarios and dashboard.

A fault arrives as a plain mapping (from CLI flags, a scenario step or a dashboard action),
is validated here into a `Fault`, and is carried out by the supervisor. Targets are names
(r0, c1, broker) or roles resolved when the fault fires (see `ROLES`).
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

from nodes.wal import CORRUPT_MODES
from protocols.base.durations import DurationError, parse_duration, show_value

# kind -> (parameters it accepts, what heals it)
KINDS: dict[str, tuple[frozenset[str], str]] = {
    "partition": (frozenset({"from", "to", "oneway", "shape", "node"}), "heal"),
    "isolate": (frozenset({"node"}), "heal"),
    "delay": (frozenset({"from", "to", "ms", "jitter", "oneway"}), "heal"),
    "loss": (frozenset({"from", "to", "p", "oneway"}), "heal"),
    "duplicate": (frozenset({"from", "to", "p", "oneway"}), "heal"),
    "pause": (frozenset({"node", "for"}), "resume, or the end of `for`"),
    "resume": (frozenset({"node"}), ""),
    "kill": (frozenset({"node", "power_loss"}), "restart"),
    "restart": (frozenset({"node"}), ""),
    "clock": (frozenset({"node", "offset", "drift"}), "clock NODE --offset 0 --drift 0"),
    "disk": (frozenset({"node", "fsync", "stall", "corrupt"}), "disk NODE --fsync 0"),
    "byzantine": (frozenset({"node", "mode"}), "byzantine NODE --mode honest"),
    "heal": (frozenset({"from", "to"}), ""),
}
LINK_KINDS = frozenset({"partition", "isolate", "delay", "loss", "duplicate"})
NODE_KINDS = frozenset({"pause", "resume", "kill", "restart", "clock", "disk", "byzantine"})
ROLES = frozenset({"leader", "followers", "primary", "random", "minority", "majority", "all"})


# The ranges every fault value must lie in. A fault outside them is a typo or an attack,
# never an experiment: a stall of a year is a dead node (use kill), and a node given one
# would carry it into every restart (node faults are re-applied).
DAY = 86_400.0
MAX_SECONDS = DAY  # pause for, delay, jitter, disk stall, clock offset (either sign)
MAX_FSYNC = 60.0  # disk fsync latency added to every fsync
MAX_DRIFT = 10.0  # a clock running 11 times as fast; the slow side is > -1 (never backwards)


class FaultError(ValueError):
    """A fault that does not validate; the message names the parameter."""


class Fault(msgspec.Struct, frozen=True, omit_defaults=True):
    kind: str
    src: tuple[str, ...] = ()  # link faults: the sending side (targets, unresolved)
    dst: tuple[str, ...] = ()  # link faults: the receiving side
    oneway: bool = False
    node: str = ""  # node faults: the target (a name or a role)
    duration: float | None = None  # pause: seconds before the automatic resume
    delay: float = 0.0  # seconds
    jitter: float = 0.0  # seconds
    p: float = 0.0
    offset: float | None = None  # clock: seconds (may be negative)
    drift: float | None = None
    fsync: float | None = None  # disk: added fsync latency, seconds
    stall: float | None = None  # disk: block fsyncs for this long, seconds
    corrupt: str = ""  # disk: damage the WAL (flip | lose), then restart the node on it
    mode: str = ""
    shape: str = ""  # partition by shape (faults/shapes.py) instead of from/to
    links: tuple[tuple[str, str], ...] = ()  # a resolved shape: the directed links dropped
    # kill: the machine loses power, not just the process: what the node wrote without an
    # fsync is gone (its WAL is cut back to the last fsync it reported).
    power_loss: bool = False

    def describe(self) -> str:
        """One line a human reads in `fault list`, the dashboard and stderr."""
        arrow = "->" if self.oneway or self.kind in ("delay", "loss", "duplicate") else "<->"
        link = f"{','.join(self.src)} {arrow} {','.join(self.dst)}"
        if self.kind == "partition" and self.shape:
            target = f" around {self.node}" if self.node else ""
            return f"partition {self.shape}{target} ({len(self.links)} links cut)"
        if self.kind == "partition":
            return f"partition {link}"
        if self.kind == "isolate":
            return f"isolate {self.node}"
        if self.kind == "delay":
            j = f" +-{self.jitter * 1000:g}ms" if self.jitter else ""
            return f"delay {link} {self.delay * 1000:g}ms{j}"
        if self.kind in ("loss", "duplicate"):
            return f"{self.kind} {link} p={self.p:g}"
        if self.kind == "pause":
            return f"pause {self.node}" + (f" for {self.duration:g}s" if self.duration else "")
        if self.kind == "clock":
            return f"clock {self.node} offset={self.offset or 0:+g}s drift={self.drift or 0:+g}"
        if self.kind == "disk" and self.corrupt:
            return f"disk {self.node} corrupt={self.corrupt}"
        if self.kind == "disk":
            return (
                f"disk {self.node} fsync=+{(self.fsync or 0) * 1000:g}ms stall={self.stall or 0:g}s"
            )
        if self.kind == "byzantine":
            return f"byzantine {self.node} mode={self.mode or 'honest'}"
        if self.kind == "kill" and self.power_loss:
            return f"kill {self.node} (power loss)"
        return f"{self.kind} {self.node}".strip()

    @property
    def heals_with(self) -> str:
        return KINDS[self.kind][1].replace("NODE", self.node or "NODE")


def _targets(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, (list, tuple)):
        items = [str(v).strip() for v in value]
    else:
        raise FaultError(f"{key!r} must be a node name, a role or a list of them")
    items = [i for i in items if i]
    if not items:
        raise FaultError(f"{key!r} names no node")
    return tuple(items)


def _seconds(value: Any, key: str, *, signed: bool = False, limit: float = MAX_SECONDS) -> float:
    """A duration (a number of seconds or "250ms"), finite, at most `limit`; with `signed`
    it may be negative, down to -`limit`."""
    try:
        if signed and isinstance(value, str) and value.strip().startswith("-"):
            seconds = -parse_duration(value.strip()[1:])
        elif signed and isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = float(value)
        else:
            seconds = parse_duration(value)
    except DurationError as e:
        raise FaultError(f"{key!r}: {e}") from None
    if not math.isfinite(seconds):
        raise FaultError(f"{key!r} must be a finite duration, got {show_value(value)}")
    if abs(seconds) > limit:
        bound = "1 day (24h)" if limit == DAY else f"{limit:g}s"
        within = f"within -{bound} and +{bound}" if signed else f"at most {bound}"
        raise FaultError(f"{key!r} must be {within}, got {show_value(value)}")
    return seconds


def _probability(value: Any, key: str) -> float:
    try:
        if isinstance(value, bool):
            raise TypeError
        p = float(value)
    except (TypeError, ValueError, OverflowError):
        raise FaultError(
            f"{key!r} must be a probability between 0 and 1, got {show_value(value)}"
        ) from None
    if not 0.0 <= p <= 1.0:
        raise FaultError(f"{key!r} must be between 0 and 1, got {show_value(value)}")
    return p


def parse_fault(spec: dict[str, Any]) -> Fault:
    """Validate a fault given as a mapping ("fault" or "kind" names it); raise FaultError."""
    spec = dict(spec)
    kind = spec.pop("fault", None) or spec.pop("kind", None)
    if not isinstance(kind, str) or kind not in KINDS:
        raise FaultError(f"unknown fault {kind!r} (known: {', '.join(sorted(KINDS))})")
    allowed = KINDS[kind][0]
    for key in spec:
        if not isinstance(key, str) or key not in allowed:
            raise FaultError(f"fault {kind!r} has no parameter {key!r}")
    f: dict[str, Any] = {"kind": kind}
    if "from" in spec:
        f["src"] = _targets(spec["from"], "from")
    if "to" in spec:
        f["dst"] = _targets(spec["to"], "to")
    if "oneway" in spec:
        if not isinstance(spec["oneway"], bool):
            raise FaultError("'oneway' must be true or false")
        f["oneway"] = spec["oneway"]
    if "node" in spec:
        # Several nodes (comma-separated) only for a WAL corruption: disks that fail
        # together (one power cut) must be damaged before any of them restarts.
        nodes = _targets(spec["node"], "node")
        many = kind == "disk" and spec.get("corrupt") is not None
        f["node"] = ",".join(nodes) if many else nodes[0]
    if "shape" in spec:
        from faults.shapes import SHAPES

        if kind != "partition" or not isinstance(spec["shape"], str) or spec["shape"] not in SHAPES:
            raise FaultError(f"'shape' must be one of {', '.join(SHAPES)}, got {spec['shape']!r}")
        if "src" in f or "dst" in f:
            raise FaultError("a partition takes either 'shape' or 'from'/'to', not both")
        if spec["shape"] == "isolate" and not f.get("node"):
            raise FaultError("shape 'isolate' needs 'node'")
        f["shape"] = spec["shape"]
    needs_link = (
        ("delay", "loss", "duplicate")
        if f.get("shape")
        else ("partition", "delay", "loss", "duplicate")
    )
    if kind in needs_link and ("src" not in f or "dst" not in f):
        raise FaultError(f"fault {kind!r} needs both 'from' and 'to'")
    if kind in NODE_KINDS | {"isolate"} and not f.get("node"):
        raise FaultError(f"fault {kind!r} needs 'node'")
    if kind == "delay":
        if "ms" not in spec:
            raise FaultError("fault 'delay' needs 'ms'")
        f["delay"] = _ms(spec["ms"], "ms")
        if "jitter" in spec:
            f["jitter"] = _ms(spec["jitter"], "jitter")
    if kind in ("loss", "duplicate"):
        if "p" not in spec:
            raise FaultError(f"fault {kind!r} needs 'p'")
        f["p"] = _probability(spec["p"], "p")
    if kind == "pause" and spec.get("for") is not None:
        f["duration"] = _seconds(spec["for"], "for")
    if kind == "clock":
        if spec.get("offset") is None and spec.get("drift") is None:
            raise FaultError("fault 'clock' needs 'offset' and/or 'drift'")
        if spec.get("offset") is not None:
            f["offset"] = _seconds(spec["offset"], "offset", signed=True)
        if spec.get("drift") is not None:
            f["drift"] = _drift(spec["drift"])
    if kind == "disk" and spec.get("corrupt") is not None:
        # A one-off: the node is stopped, its WAL damaged, and it starts again on it.
        if spec.get("fsync") is not None or spec.get("stall") is not None:
            raise FaultError("'corrupt' is a fault of its own: give it without fsync/stall")
        if spec["corrupt"] not in CORRUPT_MODES:
            raise FaultError(f"'corrupt' must be one of {', '.join(CORRUPT_MODES)}, "
                             f"got {spec['corrupt']!r}")  # fmt: skip
        f["corrupt"] = spec["corrupt"]
    elif kind == "disk":
        if spec.get("fsync") is None and spec.get("stall") is None:
            raise FaultError("fault 'disk' needs 'fsync', 'stall' or 'corrupt'")
        if spec.get("fsync") is not None:
            f["fsync"] = _seconds(spec["fsync"], "fsync", limit=MAX_FSYNC)
        if spec.get("stall") is not None:
            f["stall"] = _seconds(spec["stall"], "stall")
    if "power_loss" in spec:
        if not isinstance(spec["power_loss"], bool):
            raise FaultError("'power_loss' must be true or false")
        f["power_loss"] = spec["power_loss"]
    if kind == "byzantine":
        mode = spec.get("mode")
        if not isinstance(mode, str) or not mode.strip():
            raise FaultError("fault 'byzantine' needs 'mode' (a protocol's mode, or 'honest')")
        f["mode"] = mode.strip()
    return Fault(**f)


def byzantine_problem(protocol: str, mode: str) -> str | None:
    """Why protocol `protocol` cannot take byzantine `mode`, or None if it can. The modes
    are the protocol's own (`Protocol.byzantine_modes`); "honest" ends the misbehaviour."""
    from protocols import UnknownProtocol, get

    try:
        modes = get(protocol).byzantine_modes
    except UnknownProtocol as e:
        return str(e)
    if not modes:
        return f"protocol {protocol!r} has no byzantine modes (pbft has)"
    if mode in ("", "honest") or mode in modes:
        return None
    return (
        f"protocol {protocol!r} has no byzantine mode {mode!r} (modes: {', '.join(modes)}, honest)"
    )


def _drift(value: Any) -> float:
    """A clock's drift rate: finite, above -1 (a clock never runs backwards), at most
    MAX_DRIFT."""
    try:
        if isinstance(value, bool):
            raise TypeError
        drift = float(value)
    except (TypeError, ValueError, OverflowError):
        raise FaultError(f"'drift' must be a number, got {show_value(value)}") from None
    if not math.isfinite(drift) or not -1.0 < drift <= MAX_DRIFT:
        raise FaultError(
            f"'drift' must be greater than -1 and at most {MAX_DRIFT:g}, got {show_value(value)}"
        )
    return drift


def _ms(value: Any, key: str) -> float:
    """Milliseconds given as a number, or a duration with its own unit ("50ms", "0.05s")."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise FaultError(f"{key!r} must not be negative")
        seconds = float(value) / 1000.0
    elif isinstance(value, str) and value.strip().replace(".", "", 1).isdigit():
        seconds = float(value) / 1000.0
    else:
        return _seconds(value, key)
    if not math.isfinite(seconds) or seconds > MAX_SECONDS:
        raise FaultError(f"{key!r} must be at most 1 day (86400000 ms), got {show_value(value)}")
    return seconds
