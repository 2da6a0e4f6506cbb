"""Options and output helpers shared by every command group.

Data goes to stdout (one JSON document with --json), talk to stderr. Every option names
its metavar (a word saying what goes there, not the Python type).
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from labctl.errors import LabError

LabDir = Annotated[
    str | None,
    typer.Option(
        "--lab-dir",
        envvar="LABCTL_DIR",
        metavar="DIR",
        help="Lab directory (default .labctl/ in the current directory, or $LABCTL_DIR).",
        show_default=False,
        show_envvar=False,
    ),
]
# For commands that need no lab (listing protocols or scenarios): accepted so a script can
# pass the same --lab-dir to every command.
UnusedLabDir = Annotated[
    str | None,
    typer.Option(
        "--lab-dir",
        envvar="LABCTL_DIR",
        metavar="DIR",
        help="Accepted for uniformity; this command uses no lab dir (benchmarks make their own).",
        show_default=False,
        show_envvar=False,
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def protocol_names() -> str:
    """The protocols, for help texts: the built-ins by name (reading the installed plugins'
    entry points would cost every CLI call 30 ms), then where the others come from."""
    from protocols import BUILTINS

    return f"{', '.join(BUILTINS)}, an installed plugin's (labctl protocols), or module:Class"


def protocol_class(name: str) -> Any:
    """The protocol class `name` means (registered, or `module:Class`); a LabError
    (one line, exit 2) naming what is available if none."""
    import protocols

    try:
        return protocols.get(name)
    except (protocols.UnknownProtocol, protocols.StaleMetadata) as e:
        raise LabError(str(e)) from None


def print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, default=str) + "\n")


def say(text: str) -> None:
    """Talk for humans: stderr, so stdout stays data."""
    sys.stderr.write(text + "\n")


def lin_unknown_lines(checkers: Any) -> list[str]:
    """"linearizability unknown for key 'k' (budget: time)" for each key whose search ran
    out of budget, from a checkers summary (summary.json's "checkers", `labctl check`)."""
    lin = checkers.get("linearizability") if isinstance(checkers, dict) else None
    unknown = lin.get("unknown") if isinstance(lin, dict) else None
    if not isinstance(unknown, dict):
        return []
    return [f"linearizability unknown for key {k!r} (budget: {r})" for k, r in unknown.items()]


def unknown_lines(run_dir: Any) -> list[str]:
    """lin_unknown_lines of a finished run's summary.json (none if it cannot be read)."""
    from pathlib import Path

    if not isinstance(run_dir, str):
        return []
    try:
        doc = json.loads((Path(run_dir) / "summary.json").read_text())
    except (OSError, ValueError):
        return []
    return lin_unknown_lines(doc.get("checkers")) if isinstance(doc, dict) else []
