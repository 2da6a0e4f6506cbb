"""The Python API to a lab: what the CLI, the dashboard and scripts use (docs/api.md).

Everything outside the supervisor reaches a lab through here: find it from the lab dir's
state file (`Lab.find`) or start one (`Lab.start`, `up`), send control requests (faults,
workloads, status), and send client operations through the fault router from one
long-lived endpoint, so a script pays no process start per call. Every error a user can
cause is a LabError with a one-line message.

    from labctl.api import Lab
    with Lab.start(protocol, nodes=3, lab_dir="/tmp/mylab") as lab:
        lab.fault("partition", src="leader", dst="followers")
        print(lab.put("k", "v"), lab.status()["leaders"])

where `protocol` is any name `labctl protocols` lists, or "module:Class"; "leader" is
the role the protocol declares leads.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from labctl import labdir
from labctl.errors import LabError, LabFailed, NoLab
from nodes import auth
from nodes.process import request
from protocols import DEFAULT

UP_TIMEOUT = 30.0
MAX_NODES = 15


def lab_config(
    protocol: str,
    nodes: int | None = None,
    seed: int = 42,
    options: dict[str, Any] | None = None,
    fencing: bool = False,
    mutate: str | None = None,
) -> dict[str, Any]:
    """Validate everything a lab needs before any process starts (LabError if not).
    `mutate` names a bug to run with (`labctl mutants list`)."""
    import protocols
    from labctl import mutants
    from protocols.base import ConfigError, decode_options

    options = dict(options or {})
    try:
        cls = protocols.get(protocol)
    except (protocols.UnknownProtocol, protocols.StaleMetadata) as e:
        raise LabError(str(e)) from None
    n = cls.default_nodes if nodes is None else nodes
    if not 1 <= n <= MAX_NODES:
        raise LabError(f"--nodes must be between 1 and {MAX_NODES}, got {n}")
    problem = cls.size_problem(n)
    if problem:
        raise LabError(f"--nodes: {problem}")
    config: dict[str, Any] = {"protocol": protocol, "nodes": n, "seed": seed, "options": options,
                              "fencing": fencing}  # fmt: skip
    if mutate:
        config["mutate"] = mutate
    try:
        config = mutants.configure(config)
    except mutants.UnknownMutation as e:
        raise LabError(f"--mutate: {e}") from None
    try:
        decode_options(cls.Options, config["options"])
    except ConfigError as e:
        raise LabError(f"protocol {protocol!r}: {e}") from None
    return config


def config_warnings(config: dict[str, Any]) -> list[str]:
    """What a user should hear before this lab starts (a PBFT size that is not 3f+1)."""
    import protocols

    if config["protocol"] in ("external", "etcd"):  # not ours: no size rule of ours
        return []
    note = protocols.get(config["protocol"]).size_warning(int(config["nodes"]))
    return [note] if note else []


# Python-friendly names for the fault vocabulary's keys (faults/model.py).
_FAULT_KEYS = {"src": "from", "dst": "to", "for_": "for", "duration": "for"}


class Lab:
    """A handle on the lab running in one lab dir. As a context manager it stops the lab
    at the end of the block (use `Lab.find` without `with` to leave it running)."""

    def __init__(self, lab_dir: Path, state: dict[str, Any]) -> None:
        self.lab_dir = lab_dir
        self.state = state
        self.ctx = zmq.Context.instance()
        self.secret: bytes | None = None  # a benchmark's open lab (supervisor.py) has none
        if state.get("open_endpoints") is not True:
            try:
                self.secret = auth.read_secret(lab_dir)  # every socket of the lab asks for it
            except auth.AuthError as e:
                raise LabError(str(e)) from None
        self._endpoint: Any = None  # nodes.client.Endpoint, made on the first operation
        self.client_prefix = "cli"  # its name's prefix (the dashboard's orders: "dash")
        self._protocol: Any = None

    @classmethod
    def find(cls, lab_dir: str | Path | None = None) -> Lab:
        """Connect to the lab running in `lab_dir` (default .labctl/ or $LABCTL_DIR)."""
        path = labdir.resolve(lab_dir)
        state = labdir.read_state(path)
        if state is None:
            if (path / labdir.STATE_FILE).exists() and not os.access(
                path / labdir.STATE_FILE, os.R_OK
            ):
                raise LabError(f"cannot read {path / labdir.STATE_FILE}: the lab belongs to "
                               "another user")  # fmt: skip
            raise NoLab(f"no lab is running in {path} (start one with `labctl up`)")
        return cls(path, state)

    def endpoint(self, name: str | None = None, prefix: str = "cli") -> Any:
        """A client endpoint on this lab's router (nodes.client.Endpoint), authenticated."""
        from nodes.client import Endpoint

        return Endpoint(self.ctx, self.state["router"], name, secret=self.secret, prefix=prefix)

    def subscriber(self, *topics: bytes) -> zmq.Socket:
        """A SUB socket on the supervisor's PUB, authenticated, subscribed to `topics`."""
        sub = self.ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        auth.as_client(sub, self.secret, "subscriber")
        for topic in topics:
            sub.setsockopt(zmq.SUBSCRIBE, topic)
        sub.connect(self.state["pub"])
        return sub

    def child_env(self) -> dict[str, str]:
        """The environment for a process this side starts on the lab (a load generator)."""
        env = {k: v for k, v in os.environ.items() if k != auth.ENV}
        return env if self.secret is None else {**env, **auth.child_env(self.secret)}

    @classmethod
    def start(
        cls,
        protocol: str = DEFAULT,
        nodes: int | None = None,
        *,
        lab_dir: str | Path | None = None,
        seed: int = 42,
        options: dict[str, Any] | None = None,
        fencing: bool = False,
        mutate: str | None = None,
        settle: bool = True,
    ) -> Lab:
        """Start a lab (as `labctl up -d`) and return its handle; with `settle`, once a
        leader is elected. It runs until `down()` (or the end of a `with` block)."""
        lab = up(lab_dir, lab_config(protocol, nodes, seed, options, fencing, mutate))
        if settle:
            lab.settle()
        return lab

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    @property
    def run_dir(self) -> Path:
        return Path(self.state["run_dir"])

    @property
    def replicas(self) -> list[str]:
        return list(self.state["nodes"])

    def call(self, cmd: str, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
        answer = request(
            self.ctx, self.state["control"], {"cmd": cmd, **fields}, timeout, secret=self.secret
        )
        if answer is None:
            raise LabFailed(f"the supervisor (pid {self.state['supervisor_pid']}) did not answer")
        if not answer.get("ok"):
            code = 3 if answer.get("code") == "lab_failed" else 2
            raise LabError(str(answer.get("error", "request failed")), code)
        return answer

    def status(self) -> dict[str, Any]:
        answer = self.call("status")
        answer.pop("ok", None)
        return answer

    def fault(self, spec: dict[str, Any] | str, **params: Any) -> dict[str, Any]:
        """Apply one fault: a mapping in the fault vocabulary ({"fault": "delay", "from":
        "r0", ...}, as a scenario step), or its kind and parameters, with `src`/`dst` for
        from/to and `for_` for for: `fault("delay", src="r0", dst="r1", ms=50)`. Lists of
        nodes may be lists. Returns the supervisor's answer ("applied": what it did)."""
        if isinstance(spec, str):
            spec = {"fault": spec}
        spec = dict(spec)
        for key, value in params.items():
            if value is None:
                continue
            if isinstance(value, (list, tuple)):
                value = ",".join(map(str, value))
            spec[_FAULT_KEYS.get(key, key)] = value
        return self.call("fault", fault=spec, timeout=15.0)

    def heal(self, src: str | None = None, dst: str | None = None) -> dict[str, Any]:
        """Remove link faults (all, or those touching `src`/`dst`)."""
        return self.fault("heal", src=src, dst=dst)

    def faults(self) -> list[dict[str, Any]]:
        """The faults in force, each with "describe" and "heals_with"."""
        return self.call("faults")["faults"]

    def leaders(self) -> list[str]:
        return list(self.status().get("leaders") or [])

    def violations(self) -> list[dict[str, Any]]:
        """Safety violations found so far (kind, t, nodes, detail, evidence)."""
        return list(self.status().get("violations") or [])

    def workload(self, **spec: Any) -> dict[str, Any]:
        """Start workload clients (the keys of a scenario's [workload]: kind, rate,
        clients, target, reads, keys, timeout, retries, duration)."""
        return self.call("workload", action="start", spec=spec, timeout=10.0)

    def stop_workload(self) -> dict[str, Any]:
        return self.call("workload", action="stop", timeout=10.0)

    # -- client operations: through the fault router, from one endpoint ------------------

    def put(self, key: str, value: str, **kw: Any) -> dict[str, Any]:
        return self.request({"op": "put", "key": key, "value": value}, **kw)

    def get(self, key: str, read: str = "log", **kw: Any) -> dict[str, Any]:
        return self.request({"op": "get", "key": key}, read=read, **kw)

    def cas(self, key: str, expected: str, value: str, **kw: Any) -> dict[str, Any]:
        return self.request({"op": "cas", "key": key, "expected": expected, "value": value}, **kw)

    def order(self, user: str = "riya", side: str = "buy", qty: int = 200,
              symbol: str = "ALPHA", **kw: Any) -> dict[str, Any]:  # fmt: skip
        """Place a trade order; the leader sends it on to the broker with its fencing token."""
        from nodes import client

        if side not in ("buy", "sell"):
            raise LabError(f"side must be buy or sell, got {side!r}")
        if qty <= 0:
            raise LabError(f"quantity must be positive, got {qty}")
        order = client.new_order(user, side, qty, symbol)
        return self._call(lambda rid, name: client.order_command(rid, name, order), **kw)

    def request(
        self,
        op: dict[str, Any],
        via: str | None = None,
        timeout: float = 1.0,
        read: str = "log",
    ) -> dict[str, Any]:
        """One client operation (`op`: op, key, value, expected, order), sent to `via` (a
        name or a role; default the leader; every replica for PBFT, which needs f+1
        matching replies) and recorded in the run's history.jsonl. Returns what came back,
        as `labctl client --json` prints it: status ok / not_leader / fail / timeout,
        node, seq, term (where the protocol has one), value, leader, agreed, error."""
        from protocols.base import Command

        return self._call(lambda rid, name: Command(request_id=rid, client=name, **op), via,
                          timeout, read)  # fmt: skip

    def _call(
        self,
        build: Callable[[str, str], Any],
        via: str | None = None,
        timeout: float = 1.0,
        read: str = "log",
    ) -> dict[str, Any]:
        """The one client path (nodes/client.py) from this handle's endpoint: `build(request
        id, client name)` makes the command."""
        import random

        from faults.model import FaultError
        from faults.targets import resolve
        from nodes import client
        from protocols.base import READ_MODES, client_quorum

        if read not in READ_MODES:
            raise LabError(f"read mode must be one of {', '.join(READ_MODES)}, got {read!r}")
        doc = self.status()
        replicas = [n["id"] for n in doc["nodes"]]
        status = {n["id"]: n for n in doc["nodes"]}
        try:
            if via is None:
                node = (doc.get("leaders") or replicas)[0]
            else:
                node = resolve([via], replicas=replicas, endpoints=set(replicas), status=status,
                               rng=random.Random(), display=_display_of(doc))[0]  # fmt: skip
        except FaultError as e:
            raise LabError(str(e)) from None
        cls = self._protocol_class(doc.get("protocol"))
        quorum = client_quorum(cls, len(replicas)) if cls else 1
        # PBFT: every replica gets the request, f+1 must agree on the answer.
        nodes = replicas if cls and cls.byzantine_tolerant else [node]
        if self._endpoint is None:
            self._endpoint = self.endpoint(prefix=self.client_prefix)  # authenticated
        endpoint = self._endpoint
        command = build(client.new_request_id(endpoint.name), endpoint.name)
        return client.call(endpoint, command, nodes, quorum=quorum, read_mode=read,
                           timeout=timeout, with_term=cls is None or cls.replies_carry_term,
                           record=self._history)  # fmt: skip

    def _protocol_class(self, name: Any) -> Any:
        if self._protocol is None:
            import protocols

            try:
                self._protocol = protocols.get(str(name))
            except protocols.UnknownProtocol:
                return None
        return self._protocol

    def _history(self, record: dict[str, Any]) -> None:
        try:
            self.call("history", record=record, timeout=2.0)
        except LabError as e:
            sys.stderr.write(f"warning: could not record history: {e}\n")

    def close(self) -> None:
        """Close the client endpoint (the lab keeps running)."""
        if self._endpoint is not None:
            self._endpoint.close()
            self._endpoint = None

    def settle(self, timeout: float = 5.0) -> dict[str, Any]:
        """Wait until every replica reported its role and, unless the protocol is
        leaderless (EPaxos: every role is "replica"), one of them leads; the last status.
        A lab that does not settle in `timeout` is returned as it is (a user may have cut
        it off on purpose)."""
        deadline = time.monotonic() + timeout
        while True:
            doc = self.status()
            roles = [n.get("role") for n in doc["nodes"] if n.get("state") == "running"]
            settled = all(roles) and (doc["leaders"] or all(r == "replica" for r in roles))
            if settled or time.monotonic() > deadline:
                return doc
            time.sleep(0.02)  # status polls: the first election takes one timeout or two

    def down(self, timeout: float = 10.0) -> dict[str, Any]:
        """Stop the lab and wait until the supervisor (and so every child) is gone."""
        self.close()
        pid = self.state["supervisor_pid"]
        answer = self.call("shutdown")
        deadline = time.monotonic() + timeout
        killed = False
        while _running(pid):
            if time.monotonic() > deadline:
                kill_group(pid)
                killed = True
                break
            time.sleep(0.005)  # not our child: no wait() to block on, so poll its state
        run_dir = answer.get("run_dir")
        if not isinstance(run_dir, str) or not (Path(run_dir) / "summary.json").exists():
            how = f"was killed after {timeout:g}s" if killed else "stopped"
            raise LabFailed(
                f"the lab {how} without writing its summary (run record in {run_dir}; "
                f"see {self.lab_dir / 'supervisor.log'})"
            )
        return answer


def _running(pid: int) -> bool:
    """True until the process has exited (a zombie waiting for init to reap it has)."""
    return labdir.pid_alive(pid)


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, 9)
    except (ProcessLookupError, PermissionError):
        pass


def up(
    lab_dir: str | Path | None,
    config: dict[str, Any],
    foreground_pid: int | None = None,
) -> Lab:
    """Start a supervisor for `config` in `lab_dir` and wait until every replica is ready.

    With `foreground_pid`, the lab dies with that process (the CLI in foreground mode)."""
    path = labdir.resolve(lab_dir)
    if labdir.read_state(path) is not None or labdir.LabLock(path).held_by_someone():
        raise LabError(f"a lab is already running in {path} (stop it with `labctl down`)")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)  # the lab's record and secret are its user's alone
    if foreground_pid is not None:
        config = {**config, "parent_pid": foreground_pid}
    import psutil

    from labctl.children import python_command  # psutil: only `up` needs it

    log = os.fdopen(os.open(path / "supervisor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                            0o600), "ab")  # fmt: skip - handed to the child
    try:
        proc = psutil.Popen(
            [*python_command(), "-m", "labctl.supervisor", "--lab-dir", str(path),
             "--config", json.dumps(config)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )  # fmt: skip
    finally:
        log.close()
    deadline = time.monotonic() + UP_TIMEOUT
    try:
        while time.monotonic() < deadline:
            state = labdir.read_state(path)
            if state is not None and state.get("supervisor_pid") == proc.pid:
                return Lab(path, state)
            if proc.poll() is not None:
                raise LabFailed(
                    _last_error(path / "supervisor.log", proc.returncode), proc.returncode or 3
                )
            time.sleep(0.01)  # polling a file the supervisor writes once; nothing to wake on
    except (KeyboardInterrupt, SystemExit):
        # Interrupted while the lab starts (Ctrl-C, or a benchmark's SIGTERM). Once its
        # state is written the caller can find it and take it down (`Lab.find(...).down()`,
        # as the CLI does, saying so); before that nobody can, so it goes now: left alone,
        # it wrote its record into the dir a benchmark had just removed. SIGTERM: the
        # supervisor stops its children as on `labctl down` (they run in sessions of their
        # own, so killing its group would orphan them).
        if labdir.read_state(path) is not None:
            raise
        with contextlib.suppress(psutil.Error):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except psutil.TimeoutExpired:
                kill_group(proc.pid)
        raise
    kill_group(proc.pid)
    raise LabFailed(f"the lab did not start within {UP_TIMEOUT:g}s; see {path / 'supervisor.log'}")


def _last_error(log: Path, code: int | None) -> str:
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        lines = []
    for ln in reversed(lines):
        if ln.startswith("error:"):
            return ln[len("error:") :].strip()
    tail = lines[-1] if lines else "no output"
    return f"the supervisor exited with code {code}: {tail} (see {log})"


def _display_of(doc: dict[str, Any]) -> Any:
    """The protocol's roles and columns a status document carries (which roles lead)."""
    from protocols.display import Display

    return Display.of_status(doc)
