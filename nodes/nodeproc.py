"""What every replica process the supervisor starts has in common, once: the arguments it
is given and its main. The three kinds are nodes/replica.py (the lab's own protocols),
nodes/external/adapter.py (a Maelstrom program) and nodes/etcd/member.py (a real etcd).

    p = node_arguments("nodes.x")          # --id --replicas --router --telemetry
    p.add_argument(...)                    # --data-dir --parent-pid, then its own
    serve(p.parse_args(argv), X, refuse_with(OSError, "cannot start X"))

`serve` makes the process die with the supervisor (PR_SET_PDEATHSIG) before anything
else, builds the node, turns SIGTERM / SIGINT into `node.running = False`, runs it and
exits with the code `run` returns (none: a normal exit). `run` closes what the node
opened. A node that cannot start is refused by the `refuse` its module gives: one line
the supervisor quotes, and its exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, NoReturn, Protocol

from nodes.process import die_with_parent, on_stop_signals

CANNOT_START = 3  # the exit code the supervisor reads as "the lab itself failed"


class Node(Protocol):
    running: bool

    def run(self) -> int | None: ...


# (the exceptions a node may fail to start with, what to do with one: it does not return)
Refusal = tuple[tuple[type[BaseException], ...],
                Callable[[argparse.Namespace, BaseException], NoReturn]]  # fmt: skip


def node_arguments(prog: str) -> argparse.ArgumentParser:
    """The arguments every replica process takes (the supervisor builds its argv)."""
    p = argparse.ArgumentParser(prog=prog)
    p.add_argument("--id", required=True)
    p.add_argument("--replicas", required=True)
    p.add_argument("--router", required=True)
    p.add_argument("--telemetry", default=None)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--parent-pid", type=int, default=None)
    return p


def refuse_with(errors: tuple[type[BaseException], ...], what: str | Callable[[Any], str]
                ) -> Refusal:  # fmt: skip
    """Refuse on `errors` with "error: <id>: <what>: <the error>" on stdout (the log's last
    line, which the supervisor quotes) and exit code 3. `what` may read the arguments."""

    def refuse(args: argparse.Namespace, e: BaseException) -> NoReturn:
        said = what(args) if callable(what) else what
        print(f"error: {args.id}: {said}: {e}", flush=True)
        sys.exit(CANNOT_START)

    return errors, refuse


def serve(args: argparse.Namespace, build: Callable[[argparse.Namespace], Node],
          refusal: Refusal | None = None) -> None:  # fmt: skip
    die_with_parent(args.parent_pid)
    errors, refuse = refusal if refusal is not None else ((), None)
    try:
        node = build(args)
    except errors as e:
        assert refuse is not None
        refuse(args, e)
    on_stop_signals(lambda: setattr(node, "running", False))
    code = node.run()
    if code is not None:
        sys.exit(code)
