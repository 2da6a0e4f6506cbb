"""Options and output helpers shared by every command group.

Data goes to stdout (one JSON document with --json), talk to stderr.
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
        help="Lab directory (default .labctl/ in the current directory).",
        show_default=False,
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, default=str) + "\n")


def say(text: str) -> None:
    """Talk for humans: stderr, so stdout stays data."""
    sys.stderr.write(text + "\n")
