"""The catalogue of named mutations a lab can run with, and where each one is switched on.

A mutation belongs to the code it breaks: a protocol declares its own (`Protocol.mutations`,
switched by its `Options.mutate`), the broker and the client workload theirs (nodes/).
A lab runs with at most one, named by its config's top-level "mutate"; this module is the
one place that knows which process carries it:

- a protocol mutation goes into the protocol options every replica gets (`mutate`), so
  `--opt mutate=NAME` and `--mutate NAME` are the same thing;
- a broker mutation is passed to the broker process (`--mutate NAME`);
- a workload mutation to every client process (`--mutate NAME`).
"""

from __future__ import annotations

from typing import Any

from protocols.base.mutations import Mutation


class UnknownMutation(ValueError):
    """A mutation name the protocol, the broker and the workload do not declare."""


def lab_wide() -> tuple[Mutation, ...]:
    """The mutations of the processes every lab has, whatever its protocol."""
    from nodes.broker import MUTATIONS as BROKER
    from nodes.operations import MUTATIONS as WORKLOAD

    return (*BROKER, *WORKLOAD)


def catalogue(protocol: str) -> tuple[Mutation, ...]:
    """Every mutation a lab of `protocol` can run with: the protocol's, then the lab-wide."""
    import protocols

    return (*protocols.get(protocol).mutations, *lab_wide())


def resolve(protocol: str, name: str) -> Mutation:
    """The mutation `name` for a lab of `protocol`, or UnknownMutation listing them all."""
    for m in catalogue(protocol):
        if m.name == name:
            return m
    known = ", ".join(m.name for m in catalogue(protocol)) or "none"
    raise UnknownMutation(f"{protocol} has no mutation {name!r} (mutations: {known})")


def configure(config: dict[str, Any]) -> dict[str, Any]:
    """The lab config with its mutation resolved: validated, written into the protocol
    options when the protocol carries it, and named at the top level either way (a
    `mutate` protocol option alone counts too). Raises UnknownMutation."""
    protocol = config["protocol"]
    options = dict(config.get("options") or {})
    name = str(config.get("mutate") or options.get("mutate") or "")
    out = {**config, "options": options}
    if not name:
        out.pop("mutate", None)
        return out
    m = resolve(protocol, name)
    if options.get("mutate") not in (None, "", name):
        raise UnknownMutation(
            f"two mutations asked for: {name!r} and the option mutate={options['mutate']!r}"
        )
    if m.target == "protocol":
        options["mutate"] = name
    out["mutate"] = name
    return out


def target_of(config: dict[str, Any]) -> tuple[str, str] | None:
    """(target, name) of the config's mutation ("protocol", "broker", "workload"), if any."""
    name = config.get("mutate")
    if not name:
        return None
    return resolve(config["protocol"], name).target, name


def describe(m: Mutation) -> dict[str, Any]:
    """A mutation as `labctl mutants list --json` prints it."""
    return {
        "name": m.name,
        "target": m.target,
        "bug": m.bug,
        "source": m.source,
        "violations": list(m.violations),
        "teaches": m.teaches,
    }
