"""Options and output helpers shared by every command group.

Data goes to stdout (one JSON document with --json), talk to stderr. Every option names
its metavar (a word saying what goes there, not the Python type).
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

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
    """The registered protocols, for help texts (no protocol is imported)."""
    from protocols import REGISTRY

    return ", ".join(REGISTRY)


def print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, default=str) + "\n")


def say(text: str) -> None:
    """Talk for humans: stderr, so stdout stays data."""
    sys.stderr.write(text + "\n")
