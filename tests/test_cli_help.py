"""The CLI as a newcomer meets it: -h everywhere, --version, readable metavars, protocol
choices, --lab-dir on every command, and shell completion."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from labctl.cli.main import COMMANDS


def labctl(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labctl.cli.main", *args], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=60)  # fmt: skip


def commands() -> list[list[str]]:
    """Every command and subcommand, as argv prefixes."""
    import typer

    from labctl.cli.main import _target

    out = []
    for name in COMMANDS:
        obj = _target(name)
        if isinstance(obj, typer.Typer):
            out += [[name, c.name or c.callback.__name__] for c in obj.registered_commands]
        else:
            out.append([name])
    return out


def test_version_names_every_protocol() -> None:
    out = labctl("--version").stdout
    assert out.startswith("labctl ") and all(p in out for p in ("raft", "naive", "epaxos", "pbft"))


@pytest.mark.parametrize("argv", commands(), ids=" ".join)
def test_every_command_has_short_help_lab_dir_and_no_type_metavars(argv: list[str]) -> None:
    result = labctl(*argv, "-h")
    assert result.returncode == 0, result.stderr
    assert "--lab-dir DIR" in result.stdout
    assert not re.search(r"<(int|str|bool|float|list\[str\])>", result.stdout), result.stdout


def test_up_lists_the_protocols_and_the_top_help_wraps_no_command_mid_sentence() -> None:
    assert "One of: naive, raft, epaxos, pbft, an installed" in labctl("up", "-h").stdout
    top = labctl("-h").stdout
    listing = top[top.index("Commands:") :].splitlines()[1:]
    assert len(listing) == len(COMMANDS)
    assert not any(line.endswith("...") for line in listing), listing


def test_shell_completion_completes_commands_and_options() -> None:
    script = Path(sys.executable).with_name("labctl")  # completion keys on the program name
    if not script.exists():
        pytest.skip("labctl is not installed next to this python")

    def complete(**env: str) -> str:
        return subprocess.run([str(script)], capture_output=True, text=True, timeout=60,
                              env={**os.environ, **env}).stdout  # fmt: skip

    assert "complete" in complete(_LABCTL_COMPLETE="source_bash")
    words = complete(_LABCTL_COMPLETE="complete_bash", COMP_WORDS="labctl fault pa", COMP_CWORD="2")
    assert words.split() == ["partition", "pause"]
