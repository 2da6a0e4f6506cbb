"""The scenario file format (a contract; docs/scenarios.md is its reference): parse and
validate everything before anything starts. Every error names the file and the key.

    name, description, protocol, nodes, seed, duration
    mutate               a named bug to run with (labctl mutants list), "" for none
    [options]            protocol options for every run, validated by the protocol
    [options.<protocol>] one protocol's options, used when the run is for it
    [broker]             fencing = bool
    [node]               command = "python3 my_node.py" (external replicas: the user's
                         program, Maelstrom's protocol), topology, init_timeout, max_rate
    [system]             name = "etcd", binary, pre_vote (a real system's members: labctl/etcd/)
    [workload]           kind, rate, clients, target, reads, keys, timeout, retries
    [[step]]             at, fault, and the fault's parameters (faults/model.py)
    [expect]             min_ok, found, absent, safe, max_violations, max_info, safe_before
                         (no violation before this time), seen (event kinds that must
                         appear) ... for every protocol
    [expect.<protocol>]  the same, for one protocol only
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faults.model import ROLES, FaultError, byzantine_problem, parse_fault
from labctl.checkers.base import KINDS
from nodes.external.names import WORKLOADS as MAELSTROM_WORKLOADS
from protocols import SCENARIO_DEFAULT
from protocols.base import READ_MODES, DurationError, parse_duration
from protocols.base.durations import show_value

TOP_KEYS = {"name", "description", "protocol", "nodes", "seed", "duration", "options", "broker",
            "workload", "step", "expect", "node", "mutate", "system"}  # fmt: skip
WORKLOAD_KEYS = {"kind", "rate", "clients", "target", "reads", "keys", "timeout", "retries",
                 "settle"}  # fmt: skip
EXTERNAL = "external"
# Faults that mean nothing to a program the lab does not run the disk or the code of.
NOT_FOR_EXTERNAL = {"disk": "the program's disk I/O is not the lab's to slow or stall",
                    "byzantine": "the lab cannot make someone else's program lie"}  # fmt: skip
EXPECT_KEYS = {"min_ok", "found", "absent", "safe", "max_violations", "max_info", "safe_before",
               "seen"}  # fmt: skip
VIOLATION_KINDS = KINDS  # one list of violation kinds: the checkers'
# The expectations that say something about safety; without any, `safe = true` applies.
SAFETY_KEYS = {"safe", "found", "absent", "max_violations", "safe_before"}
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")  # file-safe: it names directories
MAX_DURATION = 86_400.0  # a scenario runs at most a day


class ScenarioError(ValueError):
    """A scenario that does not validate: `file: key: what is wrong`."""


# How the header `labctl sim explore` writes on the scenario it shrank begins (a comment
# line "# Found by `labctl sim explore -p P --seed S`: KIND.", KIND the violation found).
EXPLORE_HEADER = "Found by `labctl sim explore"
_EXPLORE_KIND = re.compile(r":\s*([A-Za-z0-9_.-]+)\.\s*$")


def explore_finding(path: str | Path | None) -> str | None:
    """The violation kind a scenario file's explore header names (a schedule found and
    shrunk in virtual time), "" if the header names none, None for any other file."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            head = [f.readline() for _ in range(8)]
    except OSError:
        return None
    for line in head:
        if not line.startswith("#"):
            break
        if line.lstrip("#").strip().startswith(EXPLORE_HEADER):
            m = _EXPLORE_KIND.search(line.rstrip())
            return m.group(1) if m else ""
    return None


@dataclass
class Step:
    at: float
    fault: dict[str, Any]  # the fault mapping, validated by faults.model.parse_fault
    index: int


@dataclass
class Scenario:
    name: str
    path: str
    description: str = ""
    protocol: str = SCENARIO_DEFAULT
    nodes: int = 3
    seed: int = 42
    duration: float = 10.0
    options: dict[str, Any] = field(default_factory=dict)
    mutate: str = ""  # a named mutation (labctl/mutants.py), "" for none
    fencing: bool = False
    workload: dict[str, Any] | None = None
    steps: list[Step] = field(default_factory=list)
    expect: dict[str, Any] = field(default_factory=dict)
    expect_by_protocol: dict[str, dict[str, Any]] = field(default_factory=dict)
    node: dict[str, Any] | None = None  # external replicas (labctl/external.py)
    system: dict[str, Any] | None = None  # a real system's members (labctl/etcd/)

    @property
    def runnable(self) -> bool:
        """Whether the scenario's protocol is one this machine can run (registered, or a
        `module:Class`; external nodes always)."""
        import protocols

        if self.system is not None:
            return True
        return self.node is not None or self.protocol == EXTERNAL or protocols.is_known(
            self.protocol
        )

    def expectations(self, protocol: str) -> dict[str, Any]:
        """The [expect] table overlaid with [expect.<protocol>]; held to `safe = true`
        when neither says anything about safety, unless the protocol declares itself
        unsafe by design (a verdict must never call a run with a violation a pass only
        because nobody wrote the expectation down)."""
        out = {**self.expect, **self.expect_by_protocol.get(protocol, {})}
        if not SAFETY_KEYS & out.keys() and not unsafe_by_design(protocol):
            out["safe"] = True
        return out


def unsafe_by_design(protocol: str) -> bool:
    """Whether `protocol` declares itself unsafe by design (`Protocol.unsafe_by_design`).
    External nodes never are: a user's program is held to `safe = true` as Maelstrom holds
    it (a failed checker fails the run), and the built-in scenarios expect only `min_ok`
    of everyone, so a correct program passes them and a wrong one fails."""
    import protocols

    if protocol == EXTERNAL:
        return False
    try:
        return protocols.get(protocol).unsafe_by_design
    except protocols.UnknownProtocol:
        return False


def load(path: str | Path, protocol: str | None = None) -> Scenario:
    """Read and validate a scenario file; `protocol` overrides the file's."""
    path = Path(path)
    where = str(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ScenarioError(f"{where}: no such scenario file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioError(f"{where}: cannot read: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{where}: not valid TOML: {e}") from None
    except RecursionError:
        raise ScenarioError(f"{where}: not valid TOML: nested too deeply") from None
    return parse(raw, where, protocol)


def parse(raw: dict[str, Any], where: str, protocol: str | None = None) -> Scenario:
    def fail(key: str, message: str) -> ScenarioError:
        return ScenarioError(f"{where}: {key}: {message}")

    for key in raw:
        if key not in TOP_KEYS:
            raise fail(key, f"unknown key (known: {', '.join(sorted(TOP_KEYS))})")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise fail("name", "required, a non-empty string")
    if not NAME.fullmatch(name):
        # The name becomes part of the run directory's and the isolated lab dir's names.
        raise fail("name", f"must be letters, digits, '.', '_' or '-' (at most 64, not "
                   f"starting with '.' or '-'), got {show_value(name)}")  # fmt: skip
    sc = Scenario(name=name, path=where, description=_str(raw, "description", "", fail))
    sc.protocol = protocol or _str(raw, "protocol", SCENARIO_DEFAULT, fail)
    _check_protocol(sc.protocol, "protocol", fail)
    sc.nodes = _int(raw, "nodes", 3, fail, lo=1, hi=15)
    sc.seed = _int(raw, "seed", 42, fail, lo=0, hi=2**63 - 1)
    sc.duration = _duration(raw.get("duration", 10), "duration", fail)
    if not 0 < sc.duration <= MAX_DURATION:
        raise fail(
            "duration",
            f"must be positive and at most 24h, got {show_value(raw.get('duration', 10))}",
        )

    options = raw.get("options", {})
    if not isinstance(options, dict):
        raise fail("options", "must be a table")
    # [options] holds options for the scenario's protocol; [options.<protocol>] tables hold
    # one protocol's own, used when the run is for that protocol (--protocol overrides).
    for key, value in options.items():
        if isinstance(value, dict):
            _check_protocol(key, f"options.{key}", fail)
    common = {k: v for k, v in options.items() if not isinstance(v, dict)}
    if sc.protocol in common:
        raise fail(f"options.{sc.protocol}", "must be a table of that protocol's options")
    options = {**common, **options.get(sc.protocol, {})}
    sc.options = options
    if sc.runnable:
        _check_options(sc.protocol, options, fail)
    sc.mutate = _str(raw, "mutate", "", fail)
    if sc.runnable:
        set_mutation(sc, sc.mutate or str(options.get("mutate", "")), fail)

    broker = raw.get("broker", {})
    if not isinstance(broker, dict):
        raise fail("broker", "must be a table")
    for key in broker:
        if key != "fencing":
            raise fail(f"broker.{key}", "unknown key (known: fencing)")
    fencing = broker.get("fencing", False)
    if not isinstance(fencing, bool):
        raise fail("broker.fencing", "must be true or false")
    sc.fencing = fencing

    if "workload" in raw:
        sc.workload = _workload(raw["workload"], sc.nodes, fail)
    replicas = {f"r{i}" for i in range(sc.nodes)}
    clients = {f"c{i}" for i in range((sc.workload or {}).get("clients", 0))}
    known = replicas | clients | {"broker"}
    steps = raw.get("step", [])
    if not isinstance(steps, list):
        raise fail("step", "must be an array of tables ([[step]])")
    for i, step in enumerate(steps):
        sc.steps.append(_step(step, i, sc.duration, known, fail))
        if sc.runnable and step.get("fault") == "byzantine":
            problem = byzantine_problem(sc.protocol, str(step.get("mode", "")))
            if problem:
                raise fail(f"step[{i}].mode", problem)
    sc.steps.sort(key=lambda s: (s.at, s.index))
    if "system" in raw:
        if not isinstance(raw["system"], dict) or "node" in raw:
            raise fail("system", "must be a table, and not with [node]")
        make_system(sc, raw["system"], fail)
    elif "node" in raw:
        if not isinstance(raw["node"], dict):
            raise fail("node", "must be a table")
        make_external(sc, raw["node"], None, fail)
    elif sc.workload is not None and sc.workload["kind"] in MAELSTROM_WORKLOADS:
        raise fail("workload.kind", f"{sc.workload['kind']} is a Maelstrom workload: it needs "
                   "external nodes ([node] command = ..., or --node-cmd)")  # fmt: skip

    expect = raw.get("expect", {})
    if not isinstance(expect, dict):
        raise fail("expect", "must be a table")
    for key, value in expect.items():
        if isinstance(value, dict):
            _check_protocol(key, f"expect.{key}", fail)
            sc.expect_by_protocol[key] = _expect(value, f"expect.{key}", fail)
        elif key not in EXPECT_KEYS:
            raise fail(f"expect.{key}", f"unknown key (known: {', '.join(sorted(EXPECT_KEYS))}, "
                       "or a protocol name for a table)")  # fmt: skip
    sc.expect = _expect(
        {k: v for k, v in expect.items() if not isinstance(v, dict)}, "expect", fail
    )
    return sc


# Faults a real system's members refuse (nodes/etcd/member.py says why when asked live).
NOT_FOR_SYSTEM = {"disk": "etcd does its own fsyncs, which the lab cannot slow down",
                  "clock": "etcd is a Go binary: it reads the clock without libc, so "
                           "libfaketime cannot skew it",
                  "byzantine": "the lab cannot make etcd lie"}  # fmt: skip


def make_system(sc: Scenario, system: dict[str, Any], fail: Any = None) -> None:
    """Run `sc` on a real system's members (`system`: the [system] table, or --system's).
    Whether this machine can (root, namespaces) is checked when the lab starts."""
    from labctl.etcd import SystemConfigError, system_config

    if fail is None:
        def fail(key: str, message: str) -> ScenarioError:
            return ScenarioError(f"{sc.path}: {key}: {message}")
    unknown = set(system) - {"name", "binary", "pre_vote"}
    if unknown:
        raise fail("system", f"unknown key {sorted(unknown)[0]!r} (known: binary, name, "
                   "pre_vote)")  # fmt: skip
    try:
        sc.system = system_config(str(system.get("name", "")), system.get("binary"),
                                  check_host=False,
                                  pre_vote=system.get("pre_vote", False))  # fmt: skip
    except SystemConfigError as e:
        raise fail("system", str(e)) from None
    if sc.mutate:
        raise fail("mutate", f"{sc.mutate!r} is a bug in the lab's own code, not in etcd")
    sc.protocol = sc.system["name"]
    sc.options = {}
    for step in sc.steps:
        why = NOT_FOR_SYSTEM.get(step.fault.get("fault", ""))
        if step.fault.get("power_loss"):
            why = "etcd's WAL is its own: the lab cannot tell what it fsynced"
        if why:
            raise fail(f"step[{step.index}]", f"a {step.fault['fault']} fault does not apply "
                       f"to {sc.protocol} ({why}): this scenario cannot run on it")  # fmt: skip
    if sc.workload is not None:
        if sc.workload["kind"] not in ("kv", "orders"):
            raise fail("workload.kind", f"{sc.protocol} members take kv operations (put, get, "
                       f"cas) and orders (a lease-lock router), not "
                       f"{sc.workload['kind']!r}")  # fmt: skip
        if sc.workload["kind"] == "kv":
            # A retried put is a second put to etcd (it keeps no request ids): it can apply
            # twice, which the checker rightly calls nonlinearizable. One attempt each
            # judges etcd, not the retry (docs/architecture.md, "etcd members"). Orders
            # keep their retries: a retry after failover is the seed's double buy.
            sc.workload["retries"] = 0
        # etcd answers in milliseconds, not the built-ins' microseconds (an fsync, a
        # quorum round, HTTP): a timeout made for them records most of its answers as info.
        sc.workload["timeout"] = max(sc.workload["timeout"], 1.0)


def make_external(
    sc: Scenario, node: dict[str, Any], workload: str | None, fail: Any = None
) -> None:
    """Run `sc` with external replicas: `node` is the [node] table (or --node-cmd's),
    `workload` a Maelstrom workload overriding the file's kind (kv means lin-kv)."""
    from labctl.external import NodeConfigError, node_config

    if fail is None:
        def fail(key: str, message: str) -> ScenarioError:
            return ScenarioError(f"{sc.path}: {key}: {message}")
    try:
        sc.node = node_config(node)
    except NodeConfigError as e:
        raise fail("node", str(e).removeprefix("node: ")) from None
    if sc.mutate:
        raise fail("mutate", f"{sc.mutate!r} is a bug in the lab's own code: external nodes "
                   "run your program, which the lab cannot mutate")  # fmt: skip
    sc.protocol = EXTERNAL
    sc.options = {}
    if sc.workload is not None or workload:
        w = sc.workload or {"kind": workload, "rate": 50, "clients": 3, "target": "any",
                            "reads": "log", "keys": 5, "retries": 0, "timeout": 1.0,
                            "settle": 2.0}  # fmt: skip
        kind = workload or ("lin-kv" if w["kind"] == "kv" else w["kind"])
        if kind not in MAELSTROM_WORKLOADS:
            raise fail("workload.kind", f"external nodes run Maelstrom's workloads "
                       f"({', '.join(MAELSTROM_WORKLOADS)}), not {kind!r}: name one "
                       "(--workload)")  # fmt: skip
        w["kind"] = kind
        if w["timeout"] < 0.5:
            w["timeout"] = 1.0  # a program behind pipes is slower than a built-in replica
        sc.workload = w
    for step in sc.steps:
        why = NOT_FOR_EXTERNAL.get(step.fault.get("fault", ""))
        if why:
            raise fail(f"step[{step.index}]", f"a {step.fault['fault']} fault does not "
                       f"apply to external nodes ({why}): this scenario cannot run with "
                       "them")  # fmt: skip


def _str(raw: dict, key: str, default: str, fail: Any) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        raise fail(key, "must be a string")
    return value


def _int(raw: dict, key: str, default: int, fail: Any, lo: int | None = None,
         hi: int | None = None) -> int:  # fmt: skip
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(key, f"must be an integer, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise fail(key, f"must be between {lo} and {hi}, got {value}")
    return value


def _duration(value: Any, key: str, fail: Any) -> float:
    try:
        return parse_duration(value)
    except DurationError as e:
        raise fail(key, str(e)) from None


def _check_protocol(name: str, key: str, fail: Any) -> None:
    """`name` is a protocol this machine knows: registered through the `labctl.protocols`
    entry points (a plugin package's too), or spelled `module:Class`."""
    import protocols

    if name == EXTERNAL or protocols.is_known(name):
        return
    raise fail(key, f"unknown protocol {name!r} (available: {', '.join(protocols.available())}"
               ", or module:Class)")  # fmt: skip


def _check_options(protocol: str, options: dict[str, Any], fail: Any) -> None:
    import protocols
    from protocols.base import ConfigError, decode_options

    try:
        decode_options(protocols.get(protocol).Options, options)
    except ConfigError as e:
        hint = " (options of one protocol only go in [options.<protocol>])"
        raise fail("options", f"{e}{hint}") from None


def set_mutation(sc: Scenario, name: str, fail: Any = None) -> None:
    """Run `sc` with mutation `name` ("" for none): validated for its protocol, and put
    into its options when the protocol carries it (labctl/mutants.py)."""
    from labctl import mutants

    if name and sc.protocol == EXTERNAL:
        message = (f"{name!r} is a bug in the lab's own code: external nodes run your "
                   "program, which the lab cannot mutate")  # fmt: skip
        if fail is None:
            raise ScenarioError(f"{sc.path}: mutate: {message}")
        raise fail("mutate", message)
    options = {k: v for k, v in sc.options.items() if k != "mutate"}
    try:
        config = mutants.configure({"protocol": sc.protocol, "options": options, "mutate": name})
    except mutants.UnknownMutation as e:
        if fail is None:
            raise ScenarioError(f"{sc.path}: mutate: {e}") from None
        raise fail("mutate", str(e)) from None
    sc.options = config["options"]
    sc.mutate = config.get("mutate", "")


def _workload(raw: Any, nodes: int, fail: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise fail("workload", "must be a table")
    for key in raw:
        if key not in WORKLOAD_KEYS:
            raise fail(
                f"workload.{key}", f"unknown key (known: {', '.join(sorted(WORKLOAD_KEYS))})"
            )
    w: dict[str, Any] = {
        "kind": raw.get("kind", "orders"),
        "rate": raw.get("rate", 50),
        "clients": raw.get("clients", 3),
        "target": raw.get("target", "leader"),
        "reads": raw.get("reads", "log"),
        "keys": raw.get("keys", 5),
        "retries": raw.get("retries", 3),
    }
    for key in ("kind", "target"):
        if not isinstance(w[key], str):
            raise fail(f"workload.{key}", f"must be a string, got {show_value(w[key])}")
    if w["kind"] not in ("orders", "kv", "mixed", *MAELSTROM_WORKLOADS):
        raise fail("workload.kind", f"must be orders, kv, mixed or one of Maelstrom's "
                   f"({', '.join(MAELSTROM_WORKLOADS)}), got {w['kind']!r}")  # fmt: skip
    settle = raw.get("settle", 2.0)
    if isinstance(settle, bool) or not isinstance(settle, (int, float)) or not 0 <= settle <= 60:
        raise fail("workload.settle", f"must be seconds in [0, 60], got {settle!r}")
    w["settle"] = float(settle)
    rate = w["rate"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 20000:
        raise fail("workload.rate", f"must be a number of operations/s in (0, 20000], got {rate!r}")
    for key, hi in (("clients", 16), ("keys", 1000), ("retries", 20)):
        v = w[key]
        if (
            isinstance(v, bool)
            or not isinstance(v, int)
            or not (0 if key == "retries" else 1) <= v <= hi
        ):
            raise fail(f"workload.{key}", f"must be an integer up to {hi}, got {v!r}")
    replicas = {f"r{i}" for i in range(nodes)}
    if w["target"] not in ("leader", "any") and w["target"] not in replicas:
        raise fail("workload.target", f"must be leader, any or a replica name, got {w['target']!r}")
    reads = w["reads"] if isinstance(w["reads"], list) else [w["reads"]]
    if not reads or not all(r in READ_MODES for r in reads):
        raise fail("workload.reads", f"must be one of {', '.join(READ_MODES)} (or a list of them), "
                   f"got {w['reads']!r}")  # fmt: skip
    w["reads"] = ",".join(reads)
    w["timeout"] = _duration(raw.get("timeout", "250ms"), "workload.timeout", fail)
    if not 0 < w["timeout"] <= 60:
        raise fail("workload.timeout", f"must be positive and at most 60s, got {w['timeout']:g}s")
    return w


def _step(raw: Any, i: int, duration: float, known: set[str], fail: Any) -> Step:
    key = f"step[{i}]"
    if not isinstance(raw, dict):
        raise fail(key, "must be a table")
    if "at" not in raw:
        raise fail(f"{key}.at", "required")
    at = _duration(raw["at"], f"{key}.at", fail)
    if at > duration:
        raise fail(f"{key}.at", f"{raw['at']!r} is after the end of the scenario ({duration:g}s)")
    spec = {k: v for k, v in raw.items() if k != "at"}
    if "fault" not in spec:
        raise fail(f"{key}.fault", "required")
    try:
        fault = parse_fault(spec)
    except FaultError as e:
        raise fail(key, str(e)) from None
    names = [*fault.src, *fault.dst] + ([fault.node] if fault.node else [])
    if fault.kind in ("pause", "resume", "kill", "restart"):
        known = known | {"router"}  # a process like the others (links are its own)
    for name in names:
        if name not in known and name not in ROLES:
            raise fail(key, f"unknown node {name!r} (known: {', '.join(sorted(known))}; "
                       f"roles: {', '.join(sorted(ROLES))})")  # fmt: skip
    return Step(at=at, fault=spec, index=i)


def _expect(raw: dict[str, Any], key: str, fail: Any) -> dict[str, Any]:
    for k, v in raw.items():
        if k not in EXPECT_KEYS:
            raise fail(f"{key}.{k}", f"unknown key (known: {', '.join(sorted(EXPECT_KEYS))})")
        if k in ("found", "absent"):
            if not isinstance(v, list) or not all(x in VIOLATION_KINDS for x in v):
                raise fail(f"{key}.{k}", f"must be a list of: {', '.join(VIOLATION_KINDS)}")
        elif k == "safe":
            if not isinstance(v, bool):
                raise fail(f"{key}.{k}", "must be true or false")
        elif k == "safe_before":
            raw[k] = _duration(v, f"{key}.{k}", fail)  # no violation before this time
            if raw[k] > MAX_DURATION:
                raise fail(f"{key}.{k}", "must be at most 24h")
        elif k == "seen":  # event kinds the run must show (pbft.view_change)
            if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
                raise fail(f"{key}.{k}", "must be a list of event kinds")
        elif isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 2**63 - 1:
            raise fail(f"{key}.{k}", "must be a non-negative integer")
    return dict(raw)
