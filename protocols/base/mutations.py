"""Named mutations: classic bugs a lab must catch, each a documented switch in the code.

A chaos lab that calls a broken protocol safe is worse than none, so the lab is tested
with protocols broken on purpose. Each mutation is one small branch inside the code it
breaks (a protocol, the broker, the workload), taken only when its options say
`mutate = "<name>"`; off by default, never monkeypatched. The owner declares what it
has as a tuple of `Mutation`s (a protocol class: `mutations`), and validates its
`mutate` field against them with `check_mutate`, so a typo fails before anything runs.

A declaration says which classic bug the switch reproduces, where that bug is described,
and which checker kinds (labctl/checkers/base.py KINDS) a run must report once the bug
did harm: `labctl mutants list` prints them and `labctl selftest` holds the lab to them.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols.base.errors import ConfigError

# Who carries the switch: the protocol's options, the broker, or the client workload.
TARGETS = ("protocol", "broker", "workload")


@dataclass(frozen=True, slots=True)
class Probe:
    """A built-in scenario that shows a mutation's bug (labctl/scenarios/NAME.toml), which
    `labctl selftest` plays before exploring: for a bug that needs orders and a broker
    (explore's runs are kv), or a fault random schedules rarely combine."""

    scenario: str  # a built-in scenario's name: "power-loss"
    fencing: bool | None = None  # the broker fences (or not) whatever the scenario says


@dataclass(frozen=True, slots=True)
class Mutation:
    """One classic bug, reproducible by name."""

    name: str  # kebab-case, unique among what one lab can run: "no-figure8"
    bug: str  # the classic bug, one sentence: what the broken code does
    source: str  # where it is described: paper and section, post-mortem, report
    violations: tuple[str, ...]  # checker kinds that show it (any one is a catch)
    teaches: str = ""  # what a user learns from watching the lab catch it
    target: str = "protocol"  # one of TARGETS
    probe: Probe | None = None  # the built-in scenario that shows it, if one does

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.strip().lower() or " " in self.name:
            raise ValueError(f"mutation name must be kebab-case, not {self.name!r}")
        if self.target not in TARGETS:
            raise ValueError(f"mutation {self.name}: target must be one of {TARGETS}")
        if not self.violations:
            raise ValueError(f"mutation {self.name}: name the violation it should cause")


def names(mutations: tuple[Mutation, ...]) -> list[str]:
    return [m.name for m in mutations]


def find(mutations: tuple[Mutation, ...], name: str) -> Mutation | None:
    return next((m for m in mutations if m.name == name), None)


def check_mutate(owner: str, value: str, mutations: tuple[Mutation, ...]) -> None:
    """Raise ConfigError unless `value` is "" (no mutation) or one of `mutations`."""
    if value == "" or find(mutations, value) is not None:
        return
    known = ", ".join(names(mutations)) or "none"
    raise ConfigError(f"option 'mutate': {owner} has no mutation {value!r} (mutations: {known})")
