"""The `labctl` entry point: the command table and the one exit path.

Commands live in their own modules and are imported only when invoked (or when the help
lists them), so `labctl status` pays for the status code and not for every protocol, the
dashboard or the checkers. A helper adding a command adds one row to COMMANDS.

Errors a user can cause are LabError: one line on stderr and the code from
labctl.errors (2 bad input / no lab, 3 the lab failed). Tracebacks only with LABCTL_DEBUG=1.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated, Any

import typer
import typer.core
import typer.main

from labctl.errors import EXIT_LAB_FAILED, LabError

# name -> "module:attribute", in the order the help lists them. The attribute is a Typer
# app (a command group) or a plain function (one command).
COMMANDS: dict[str, str] = {
    "up": "labctl.cli.lab:up",
    "down": "labctl.cli.lab:down",
    "status": "labctl.cli.lab:status",
    "fault": "labctl.cli.fault:app",
    "client": "labctl.cli.client:app",
    "dash": "labctl.cli.dash:dash",
    "scenario": "labctl.cli.scenario:app",
    "check": "labctl.cli.scenario:check",
    "chaos": "labctl.cli.scenario:chaos",
    "sim": "labctl.cli.sim:app",
    "mutants": "labctl.cli.mutants:app",
    "selftest": "labctl.cli.selftest:selftest",
    "runs": "labctl.cli.runs:app",
    "wal": "labctl.cli.wal:app",
    "protocols": "labctl.cli.lab:list_protocols",
    "report": "labctl.cli.report:report",
    "bench": "labctl.cli.bench:bench",
}

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class LazyGroup(typer.core.TyperGroup):
    """The top-level group: a command's module is imported when the command is asked for."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """The command list from each command's help text alone: building every command
        (and every subcommand of a group) only to print one line each costs more than the
        rest of `labctl --help`."""
        from typer._click.utils import make_default_short_help

        limit = formatter.width - 6 - max(map(len, COMMANDS))
        rows = [(name, make_default_short_help(_help(_target(name)), limit)) for name in COMMANDS]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def get_command(self, ctx: Any, name: str) -> Any:
        if name not in COMMANDS:
            return None
        obj = _target(name)
        group = isinstance(obj, typer.Typer)
        if not group:
            single = typer.Typer(rich_markup_mode=None)
            single.command(name)(obj)
            obj = single
        obj.rich_markup_mode = None  # plain click help: fast, and wrapped by paragraph
        obj._add_completion = False  # completion is the root's (see the help text)
        # A group stays a group even with one subcommand (`mutants list`): get_command
        # would collapse it into that subcommand.
        command = _lazy_group(obj) if group else typer.main.get_command(obj)
        _name_metavars(command)
        return command


class LazySubGroup(typer.core.TyperGroup):
    """A command group (`fault`, `client`, ...) whose subcommands are built from their
    functions when asked for: typer reads every subcommand's signature to build a group,
    and `labctl fault heal` would pay for the fourteen it does not run (10 ms of a call
    whose budget is 100)."""

    infos: dict[str, Any]  # name -> typer CommandInfo, set by _lazy_group

    def list_commands(self, ctx: Any) -> list[str]:
        return [*self.commands, *(n for n in self.infos if n not in self.commands)]

    def get_command(self, ctx: Any, name: str) -> Any:
        if name not in self.commands and name in self.infos:
            command = typer.main.get_command_from_info(
                self.infos[name], pretty_exceptions_short=True, rich_markup_mode=None
            )
            _name_metavars(command)
            self.commands[name] = command
        return self.commands.get(name)


def _lazy_group(app: typer.Typer) -> Any:
    """The click group of a Typer app with its callback, help and options built now and
    its subcommands when invoked (LazySubGroup)."""
    import copy

    infos = {
        info.name or typer.main.get_command_name(info.callback.__name__): info
        for info in app.registered_commands
    }
    shell = copy.copy(app)
    shell.registered_commands = []
    shell.info = copy.copy(app.info)
    shell.info.cls = LazySubGroup
    group = typer.main.get_group(shell)
    group.infos = infos
    return group


def _name_metavars(command: Any) -> None:
    """An option that names no metavar shows its own name (--shrink-for SHRINK_FOR), not
    the Python type typer would print (<str>): one place for every command's help."""
    for param in getattr(command, "params", []):
        if param.metavar is None and not getattr(param, "is_flag", False) and param.opts:
            if param.param_type_name == "option" and not getattr(param, "count", False):
                param.metavar = param.opts[0].lstrip("-").upper().replace("-", "_")
    for sub in getattr(command, "commands", {}).values():
        _name_metavars(sub)


def _target(name: str) -> Any:
    module, _, attr = COMMANDS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def _help(obj: Any) -> str:
    if isinstance(obj, typer.Typer):
        for text in (obj.info.short_help, obj.info.help):
            if isinstance(text, str):
                return text
        return ""
    return " ".join((obj.__doc__ or "").split("\n\n")[0].split())


def _version(value: bool) -> None:
    if not value:
        return
    from labctl.catalogue import catalogue, version

    names = ", ".join(f"{p['name']} ({p['default_nodes']} nodes)" for p in catalogue())
    typer.echo(f"labctl {version()} (Python {sys.version.split()[0]})\nprotocols: {names}")
    raise typer.Exit()


app = typer.Typer(
    name="labctl",
    cls=LazyGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings=CONTEXT,
)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_version, is_eager=True,
                     help="Print the version and the protocols, then exit."),
    ] = False,
) -> None:  # fmt: skip
    """A chaos lab for coordination protocols: real replicas, a fault router, a verdict.

    Every command takes --lab-dir DIR (default .labctl/, or $LABCTL_DIR) and -h for help.
    Shell completion: eval "$(_LABCTL_COMPLETE=source_bash labctl)" in ~/.bashrc
    (source_zsh in ~/.zshrc; fish: _LABCTL_COMPLETE=source_fish labctl | source)."""


def main() -> None:
    if os.environ.get("_LABCTL_COMPLETE"):  # a shell asking for completions (see the help)
        from typer.completion import completion_init

        completion_init()
    try:
        app()
    except LabError as e:
        if os.environ.get("LABCTL_DEBUG"):
            raise
        sys.stderr.write(f"error: {e}\n")
        sys.exit(e.code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # a bug: say so in one line unless debugging
        if os.environ.get("LABCTL_DEBUG"):
            raise
        sys.stderr.write(
            f"error: internal: {type(e).__name__}: {e} (LABCTL_DEBUG=1 for a traceback)\n"
        )
        sys.exit(EXIT_LAB_FAILED)


if __name__ == "__main__":
    main()
