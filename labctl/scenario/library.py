"""The built-in scenarios shipped in labctl/scenarios/, found by name."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from labctl.scenario.format import Scenario, ScenarioError, load


def builtin_dir() -> Path:
    return Path(str(resources.files("labctl.scenarios")))


def names() -> list[str]:
    return sorted(p.stem for p in builtin_dir().glob("*.toml"))


def find(name_or_file: str) -> Path:
    """A file path as given, else the built-in scenario of that name."""
    path = Path(name_or_file)
    if path.suffix == ".toml" or path.exists():
        return path
    builtin = builtin_dir() / f"{name_or_file}.toml"
    if builtin.exists():
        return builtin
    raise ScenarioError(
        f"{name_or_file}: no such scenario file or built-in scenario "
        f"(built-in: {', '.join(names())})"
    )


def resolve(name_or_file: str, protocol: str | None = None) -> Scenario:
    return load(find(name_or_file), protocol)
