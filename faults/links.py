"""Link rules: what the fault router does to the messages of one directed link (src -> dst).

A `LinkRule` says drop, delay (with jitter), lose or duplicate; a `LinkTable` maps directed
links to rules and travels between the supervisor and the router as plain msgpack-able data
(`to_wire` / `from_wire`). A link absent from the table passes untouched.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any

import msgspec


def _check_number(name: str, value: object) -> float:
    # bool is an int subclass: `loss = true` in a scenario is a mistake, not probability 1.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


class LinkRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The fault applied to one directed link. Partition (`drop`) wins over everything.

    delay, jitter: seconds; each message waits delay + uniform(-jitter, +jitter), never less
    than zero, and never leaves before an earlier message of the same link (FIFO).
    loss, duplicate: probabilities in [0, 1]; a duplicated message is forwarded twice.
    """

    drop: bool = False
    delay: float = 0.0
    jitter: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.drop, bool):
            raise ValueError(f"drop must be true or false, got {self.drop!r}")
        for name in ("delay", "jitter"):
            t = _check_number(name, getattr(self, name))
            if not (math.isfinite(t) and t >= 0.0):
                raise ValueError(f"{name} must be a finite number of seconds >= 0, got {t!r}")
        for name in ("loss", "duplicate"):
            p = _check_number(name, getattr(self, name))
            if not 0.0 <= p <= 1.0:  # also rejects NaN
                raise ValueError(f"{name} is a probability and must be in [0, 1], got {p!r}")

    def is_pass(self) -> bool:
        """True when the rule changes nothing, so the router can take its fast path."""
        return (
            not self.drop
            and not self.delay
            and not self.jitter
            and not self.loss
            and (not self.duplicate)
        )

    def holds_back(self) -> bool:
        """True when messages of this link may wait in the router's delay queue."""
        return self.delay > 0.0 or self.jitter > 0.0

    def to_wire(self) -> dict[str, Any]:
        return msgspec.structs.asdict(self)

    @classmethod
    def from_wire(cls, raw: object) -> LinkRule:
        """Build a rule from a map; unknown keys or bad values raise ValueError."""
        if not isinstance(raw, Mapping):
            raise ValueError(f"a link rule must be a map, got {raw!r}")
        try:
            return msgspec.convert(dict(raw), cls)
        except msgspec.ValidationError as e:
            raise ValueError(f"bad link rule {dict(raw)!r}: {e}") from None


PASS = LinkRule()

Link = tuple[str, str]


class LinkTable(MutableMapping[Link, LinkRule]):
    """A dict of directed link (src, dst) -> LinkRule that validates what goes in.

    Links not in the table pass; so do links whose rule `is_pass()`.
    """

    def __init__(self, rules: Mapping[Link, LinkRule] | None = None) -> None:
        self._rules: dict[Link, LinkRule] = {}
        if rules:
            self.update(rules)

    def __getitem__(self, link: Link) -> LinkRule:
        return self._rules[link]

    def __setitem__(self, link: Link, rule: LinkRule) -> None:
        if not isinstance(link, tuple) or len(link) != 2:
            raise ValueError(f"a link is a (src, dst) pair, got {link!r}")
        _check_name("src", link[0])
        _check_name("dst", link[1])
        if not isinstance(rule, LinkRule):
            raise TypeError(f"rule must be a LinkRule, got {type(rule).__name__}")
        self._rules[link] = rule

    def __delitem__(self, link: Link) -> None:
        del self._rules[link]

    def __iter__(self) -> Iterator[Link]:
        return iter(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def __repr__(self) -> str:
        return f"LinkTable({self._rules!r})"

    def rule(self, src: str, dst: str) -> LinkRule:
        """The rule of src -> dst, PASS when the table does not name the link."""
        return self._rules.get((src, dst), PASS)

    def to_wire(self) -> list[dict[str, Any]]:
        """[{"src", "dst", "rule": {...}}, ...], sorted so equal tables ship equal bytes."""
        return [
            {"src": s, "dst": d, "rule": r.to_wire()} for (s, d), r in sorted(self._rules.items())
        ]

    @classmethod
    def from_wire(cls, raw: object) -> LinkTable:
        """Inverse of to_wire; any bad entry raises ValueError naming it (nothing half-built)."""
        if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Iterable):
            raise ValueError(f"links must be a list of {{src, dst, rule}} maps, got {raw!r}")
        table = cls()
        for i, entry in enumerate(raw):
            if not isinstance(entry, Mapping):
                raise ValueError(f"links[{i}] must be a map with src, dst, rule; got {entry!r}")
            extra = set(entry) - {"src", "dst", "rule"}
            if extra:
                raise ValueError(f"links[{i}] has unknown keys {sorted(extra)}")
            missing = {"src", "dst"} - set(entry)
            if missing:
                raise ValueError(f"links[{i}] is missing {sorted(missing)}")
            src, dst = entry["src"], entry["dst"]
            try:
                _check_name("src", src)
                _check_name("dst", dst)
                rule = LinkRule.from_wire(entry.get("rule", {}))
            except ValueError as e:
                raise ValueError(f"links[{i}]: {e}") from None
            # Two rules for one link would make the table depend on list order: refuse it.
            if (src, dst) in table:
                raise ValueError(f"links[{i}]: link {src} -> {dst} given twice")
            table[(src, dst)] = rule
        return table


def _check_name(what: str, name: object) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what} must be a non-empty endpoint name, got {name!r}")
