"""Everything the engineer can do from the dashboard, as data: key, form fields, and what runs.

One `Action` per verb (partition, pause, order, swap...). The app turns the table into key
bindings, command-palette entries and the help screen; the dialog builds its form from
`fields` with `defaults()` taken from the live picture (the leader, the other nodes);
`build()` turns the form's values into the fault vocabulary's mapping (faults/model.py),
validated before anything is sent, and `perform()` runs it against a `Source` in a worker
thread and returns the message that reports the outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textual.message import Message

from faults.model import FaultError, parse_fault
from labctl.errors import LabError
from tui.messages import ActionDone, LabSwapped, ScenarioAttached, ScenarioDone
from tui.model import LabModel
from tui.source import Source


@dataclass(frozen=True)
class Field:
    key: str
    label: str
    kind: str  # nodes (pick several) | node (pick one) | text | flag | choice
    default: Any = None
    choices: tuple[str, ...] = ()
    with_broker: bool = False  # node pickers of link faults also offer the broker


@dataclass(frozen=True)
class Action:
    name: str
    key: str
    title: str
    help: str
    fields: tuple[Field, ...] = ()
    kind: str = "fault"  # fault | order | swap | workload | scenario
    build: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    show: bool = True  # in the footer (all are in the help screen and the palette)


def _blank(v: Any) -> Any:
    return None if isinstance(v, str) and not v.strip() else v


def _link(kind: str, extra: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[..., Any]:
    def build(v: dict[str, Any]) -> dict[str, Any]:
        spec = {"fault": kind, "from": list(v["from"]), "to": list(v["to"])}
        spec.update({k: x for k, x in extra(v).items() if _blank(x) is not None})
        return spec

    return build


def _node(kind: str, **extra: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def build(v: dict[str, Any]) -> dict[str, Any]:
        spec = {"fault": kind, "node": v["node"]}
        spec.update({k: v[f] for k, f in extra.items() if _blank(v.get(f)) is not None})
        return spec

    return build


FROM = Field("from", "from", "nodes", with_broker=True)
TO = Field("to", "to", "nodes", with_broker=True)
NODE = Field("node", "node", "node")

ACTIONS: dict[str, Action] = {
    a.name: a
    for a in [
        Action("partition", "p", "Partition", "Cut links between two sets of nodes.",
               (FROM, TO, Field("oneway", "one-way (from → to only)", "flag", False)),
               build=_link("partition", lambda v: {"oneway": bool(v["oneway"])})),
        Action("isolate", "i", "Isolate", "Cut a node off from every other replica (clients "
               "still reach it).", (NODE,), build=_node("isolate")),
        Action("heal", "h", "Heal", "Remove every link fault.", build=lambda v: {"fault": "heal"}),
        Action("delay", "d", "Delay", "Hold messages back on the links from → to.",
               (FROM, TO, Field("ms", "delay (ms)", "text", "50"),
                Field("jitter", "jitter ± (ms)", "text", "")),
               build=_link("delay", lambda v: {"ms": v["ms"], "jitter": v["jitter"]}),
               show=False),
        Action("loss", "l", "Loss", "Drop messages at random on the links from → to.",
               (FROM, TO, Field("p", "probability (0-1)", "text", "0.3")),
               build=_link("loss", lambda v: {"p": v["p"]}), show=False),
        Action("duplicate", "x", "Duplicate", "Deliver messages twice at random (from → to).",
               (FROM, TO, Field("p", "probability (0-1)", "text", "0.1")),
               build=_link("duplicate", lambda v: {"p": v["p"]}), show=False),
        Action("pause", "z", "Pause", "Freeze a node (SIGSTOP), like a long GC pause.",
               (NODE, Field("for", "for (e.g. 5s, 800ms; empty: until resumed)", "text", "5s")),
               build=_node("pause", **{"for": "for"})),
        Action("resume", "u", "Resume", "Continue a paused node (SIGCONT).", (NODE,),
               build=_node("resume"), show=False),
        Action("kill", "k", "Kill", "SIGKILL a node.", (NODE,), build=_node("kill")),
        Action("restart", "r", "Restart", "Start a node again; it recovers from its WAL.",
               (NODE,), build=_node("restart")),
        Action("clock", "c", "Clock skew", "Jump a node's clock and/or make it run fast or slow.",
               (NODE, Field("offset", "offset (e.g. 500ms, -2s)", "text", "500ms"),
                Field("drift", "drift (0.05 = 5% fast)", "text", "0")),
               build=_node("clock", offset="offset", drift="drift"), show=False),
        Action("disk", "s", "Disk stall", "Stall a node's WAL fsyncs, or slow them down.",
               (NODE, Field("stall", "stall for (e.g. 5s)", "text", "5s"),
                Field("fsync", "added fsync latency (e.g. 12ms)", "text", "")),
               build=_node("disk", stall="stall", fsync="fsync"), show=False),
        Action("corrupt", "v", "Corrupt WAL", "Damage a node's WAL and restart it on it: flip "
               "a bit in a written record, or lose its newest fsynced records.",
               (NODE, Field("corrupt", "damage", "choice", "flip", ("flip", "lose"))),
               build=_node("disk", corrupt="corrupt"), show=False),
        Action("byzantine", "b", "Byzantine", "Make a node lie the way the protocol defines "
               "(PBFT: silent, equivocate, forge, delay-primary), or honest again.",
               (NODE, Field("mode", "mode", "choice", "equivocate")),
               build=_node("byzantine", mode="mode"), show=False),
        Action("order", "o", "Order", "Send one trade order to a node, through the router.",
               (NODE, Field("user", "user", "text", "riya"),
                Field("side", "side", "choice", "buy", ("buy", "sell")),
                Field("qty", "quantity", "text", "200")), kind="order"),
        Action("swap", "w", "Swap protocol", "End this run and start a new lab with the same "
               "node count and another protocol.", (Field("protocol", "protocol", "choice"),),
               kind="swap"),
        Action("workload", "g", "Workload", "Start client processes sending orders or kv "
               "operations at a steady rate (or stop them); ops show in the title.",
               (Field("action", "action", "choice", "start", ("start", "stop")),
                Field("kind", "kind", "choice", "orders", ("orders", "kv")),
                Field("target", "target", "choice", "leader"),
                Field("rate", "rate (ops/s, all clients)", "text", "50"),
                Field("clients", "clients (1-16)", "text", "2")),
               kind="workload", show=False),
        Action("scenario", "n", "Run scenario", "End this run and play a built-in scenario live "
               "in its own lab; its verdict shows when it ends.",
               (Field("scenario", "scenario", "choice"), Field("protocol", "protocol", "choice"),
                Field("fresh", "afterwards, start your lab again here (same protocol and nodes)",
                      "flag", True)),
               kind="scenario", show=False),
    ]
}  # fmt: skip


def defaults(action: Action, model: LabModel, protocols: list[str]) -> dict[str, Any]:
    """Initial form values from the live picture: who leads, who is paused or down."""
    nodes = model.order
    leaders = model.leaders
    leader = leaders[0] if leaders else (nodes[0] if nodes else "r0")
    out: dict[str, Any] = {}
    for f in action.fields:
        out[f.key] = f.default
    if "from" in out:
        out["from"] = [leader]
        out["to"] = [n for n in nodes if n != leader]
    if "node" in out:
        wanted = {"resume": "paused", "restart": "stopped"}.get(action.name)
        matching = [n for n, s in model.nodes.items() if wanted and s.get("state") == wanted]
        out["node"] = matching[0] if matching else leader
    if action.kind == "swap":
        others = [p for p in protocols if p != model.protocol]
        out["protocol"] = (others or protocols or [model.protocol])[0]
    if action.kind == "workload":
        out["action"] = "stop" if model.workload else "start"
    if action.name == "byzantine":
        out["mode"] = (byzantine_modes(model.protocol) or ("honest",))[0]
    if action.kind == "scenario":
        current = model.protocol if model.protocol in protocols else None
        out["protocol"] = current or (protocols[0] if protocols else None)
        names = scenario_names()
        fits = [n for n in names if _scenario_problem(n, out["protocol"]) is None]
        out["scenario"] = (fits or names or [None])[0]
    return out


def _scenario_problem(name: str, protocol: str | None) -> str | None:
    """Why scenario `name` cannot run with `protocol` (an option it does not know...)."""
    from labctl.scenario.format import ScenarioError
    from labctl.scenario.library import resolve

    try:
        resolve(name, protocol)
    except ScenarioError as e:
        return str(e)
    return None


def scenario_names() -> list[str]:
    from labctl.scenario import library

    return library.names()


def choices(field: Field, model: LabModel, protocols: list[str]) -> list[str]:
    if field.kind in ("nodes", "node"):
        return model.order + (["broker"] if field.with_broker else [])
    if field.key == "protocol":
        return protocols
    if field.key == "target":
        return ["leader", "any", *model.order]
    if field.key == "scenario":
        return scenario_names()
    if field.key == "mode":
        return [*byzantine_modes(model.protocol), "honest"]
    return list(field.choices)


def byzantine_modes(protocol: str) -> tuple[str, ...]:
    import protocols

    try:
        return protocols.get(protocol).byzantine_modes
    except protocols.UnknownProtocol:
        return ()


def check(action: Action, values: dict[str, Any]) -> str | None:
    """What is wrong with the form, in one sentence, or None when it can be sent."""
    if action.kind == "fault":
        if "from" in values and not values["from"]:
            return "pick at least one node on the 'from' side"
        if "to" in values and not values["to"]:
            return "pick at least one node on the 'to' side"
        try:
            parse_fault(build(action, values))
        except FaultError as e:
            return str(e)
    elif action.kind == "order":
        try:
            if int(str(values["qty"])) <= 0:
                raise ValueError
        except ValueError:
            return f"quantity must be a positive whole number, got {values['qty']!r}"
    elif action.kind == "swap" and not values.get("protocol"):
        return "pick a protocol"
    elif action.kind == "workload" and values.get("action") != "stop":
        return _check_workload(values)
    elif action.kind == "scenario":
        if not values.get("scenario"):
            return "pick a scenario"
        if not values.get("protocol"):
            return "pick a protocol"
        return _scenario_problem(values["scenario"], values["protocol"])
    return None


def _check_workload(values: dict[str, Any]) -> str | None:
    try:
        if not float(str(values["rate"])) > 0:
            raise ValueError
    except ValueError:
        return f"rate must be a positive number of operations/s, got {values['rate']!r}"
    try:
        if not 1 <= int(str(values["clients"])) <= 16:
            raise ValueError
    except ValueError:
        return f"clients must be a whole number from 1 to 16, got {values['clients']!r}"
    if not values.get("kind") or not values.get("target"):
        return "pick a kind and a target"
    from labctl.intake import Rejected
    from labctl.intake import workload_spec as supervisor_check

    try:  # the supervisor's own bounds (rate at most 20000/s...), refused before sending
        supervisor_check(workload_spec(values))
    except Rejected as e:
        return str(e.detail)
    return None


def workload_spec(values: dict[str, Any]) -> dict[str, Any]:
    """The supervisor's workload spec from the form (see labctl/supervisor.py `_workload`)."""
    return {
        "kind": values["kind"],
        "rate": float(values["rate"]),
        "clients": int(values["clients"]),
        "target": values["target"],
        "reads": "log",
    }


def build(action: Action, values: dict[str, Any]) -> dict[str, Any]:
    assert action.build is not None, f"{action.name} is not a fault"
    return action.build(values)


def perform(
    action: Action,
    values: dict[str, Any],
    source: Source,
    post: Callable[[Message], Any] | None = None,
) -> Message:
    """Run the action (blocking: call it from a worker thread) and report how it went.

    A scenario also reports, through `post`, when its lab is up (ScenarioAttached)."""
    try:
        if action.kind == "workload":
            return _workload(values, source)
        if action.kind == "scenario":
            name, protocol = values["scenario"], values["protocol"]

            def attached(lab_dir: str) -> None:
                if post is not None:
                    post(ScenarioAttached(name, protocol, lab_dir))

            out = source.scenario(name, protocol, bool(values.get("fresh")), attached)
            return ScenarioDone(out["summary"], out.get("restarted"), out.get("error"))
        if action.kind == "order":
            out = source.order(values["node"], values["user"], values["side"], int(values["qty"]))
            return _order_done(out)
        if action.kind == "swap":
            moved = source.swap(values["protocol"])
            return LabSwapped(values["protocol"], moved["old_run_dir"], moved["new_run_dir"],
                              moved.get("note", ""), list(moved.get("warnings") or []))  # fmt: skip
        answer = source.fault(build(action, values))
    except LabError as e:
        return ActionDone(action.title, error=str(e), severity="error")
    applied = answer.get("applied") or [answer.get("describe") or action.name]
    return ActionDone(action.title, "; ".join(map(str, applied)))


def _workload(values: dict[str, Any], source: Source) -> ActionDone:
    if values.get("action") == "stop":
        out = source.workload("stop")
        n = out.get("stopped", 0)
        return ActionDone("Workload", f"stopped {n} client{'s' if n != 1 else ''}")
    spec = workload_spec(values)
    out = source.workload("start", spec)
    return ActionDone("Workload", f"{out.get('clients', spec['clients'])} clients: "
                      f"{spec['kind']} at {spec['rate']:g}/s to {spec['target']}")  # fmt: skip


def _order_done(out: dict[str, Any]) -> ActionDone:
    status, node = out.get("status"), out.get("node")
    ms = f" ({out['ms']} ms)" if "ms" in out else ""
    if status == "ok":
        term = f"term {out['term']}, " if out.get("term") is not None else ""
        agreed = f", {len(out['agreed'])} replies agreed" if out.get("agreed") else ""
        return ActionDone("Order", f"ok from {node}: {term}seq {out.get('seq')}{agreed}{ms}")
    if status == "not_leader":
        return ActionDone("Order", f"{node} is not the leader; it believes in "
                          f"{out.get('leader')}{ms}", severity="warning")  # fmt: skip
    detail = f"{status} from {node}" + (f": {out['error']}" if out.get("error") else "") + ms
    return ActionDone("Order", detail, severity="warning")
