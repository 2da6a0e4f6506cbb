"""How protocols are found (entry points, module:Class) and what they declare for the lab's
readers (roles, columns): a user sees these as `-p NAME` working or failing in one line,
and as the columns and leaders `labctl status` shows."""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import pytest

import protocols
from labctl.statustext import render
from protocols.base import Column, Protocol, Role
from protocols.display import DEFAULT_DISPLAY, Display, format_cell


def test_the_builtins_come_from_labctls_entry_points_and_module_class_works_too() -> None:
    assert protocols.available()[:4] == ["naive", "raft", "epaxos", "pbft"]
    assert protocols.get("raft") is protocols.get("protocols.raft:RaftProtocol")
    with pytest.raises(protocols.UnknownProtocol) as e:
        protocols.get("raftt")
    assert str(e.value) == ("unknown protocol 'raftt' (available: "
                            f"{', '.join(protocols.available())})")  # fmt: skip
    with pytest.raises(protocols.UnknownProtocol, match="no module 'no_such_pkg'"):
        protocols.get("no_such_pkg:Proto")


def test_a_broken_registered_protocol_raises_its_own_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Not "unknown": the import error inside the protocol's code is what a user must see."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # the patched metadata, not a cache
    broken = metadata.EntryPoint("broken", "protocols.no_such_module:X", protocols.GROUP)
    eps = [*metadata.entry_points(group=protocols.GROUP), broken]
    monkeypatch.setattr(metadata, "entry_points", lambda group: eps)
    protocols.registry.cache_clear()
    protocols.get.cache_clear()
    try:
        assert "broken" in protocols.available()
        with pytest.raises(ModuleNotFoundError):
            protocols.get("broken")
    finally:
        protocols.registry.cache_clear()
        protocols.get.cache_clear()


def test_stale_metadata_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # no cached answer from a good install
    monkeypatch.setattr(metadata, "entry_points", lambda group: [])
    protocols.registry.cache_clear()
    try:
        with pytest.raises(protocols.StaleMetadata, match="reinstall labctl"):
            protocols.available()
    finally:
        protocols.registry.cache_clear()


def test_entry_points_are_read_once_until_an_install_changes_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The scan costs a third of a CLI call: it is cached, and an install (which rewrites
    a *.dist-info directory on sys.path) makes the next call scan again."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    scans = []
    real = protocols._scan_entry_points
    monkeypatch.setattr(protocols, "_scan_entry_points", lambda: scans.append(1) or real())
    first = protocols._entry_points()
    assert protocols._entry_points() == first and len(scans) == 1
    (site / "mine-1.0.dist-info").mkdir()  # what pip install does to a site directory
    os.utime(site, ns=(1, 1))  # a new mtime whatever the filesystem's clock resolution
    assert protocols._entry_points() == first and len(scans) == 2


def test_a_declaration_that_makes_no_sense_fails_when_the_class_is_defined() -> None:
    with pytest.raises(ValueError, match="distinct"):

        class Twice(Protocol):
            roles: ClassVar[Any] = (Role("a"), Role("a"))

    with pytest.raises(ValueError, match="format"):

        class BadFormat(Protocol):
            columns: ClassVar[Any] = (Column("x", format="sparkles"),)


def test_columns_format_once_for_status_and_dashboard() -> None:
    pbft = protocols.get("pbft").display()
    seq = next(c for c in pbft.columns if c.key == "seq")
    assert format_cell(pbft, seq, {"role": "primary", "seq": 7}) == "7"
    assert format_cell(pbft, seq, {"role": "backup", "seq": 7}) == "-"  # the primary's only
    byz = next(c for c in pbft.columns if c.key == "byzantine")
    assert format_cell(pbft, byz, {"byzantine": None}) == "honest"
    fast = next(c for c in protocols.get("epaxos").display().columns if c.format == "percent")
    assert format_cell(DEFAULT_DISPLAY, fast, {"fast_path_ratio": 0.734}) == "73%"


def test_status_shows_the_columns_and_leaders_the_status_document_declares() -> None:
    display = Display(
        roles=(Role("boss", leads=True), Role("worker")),
        columns=(Column("role", format="role"), Column("epoch", right=True)),
        term_word="epoch",
    )
    nodes = [{"id": "r0", "pid": 1, "state": "running", "role": "boss", "epoch": 3},
             {"id": "r1", "pid": 2, "state": "running", "role": "boss", "epoch": 2}]  # fmt: skip
    doc = {"protocol": "mine", "seed": 1, "nodes": nodes, "leaders": ["r0", "r1"],
           "display": display.to_doc()}  # fmt: skip
    text = render(doc)
    assert text.splitlines()[1].split() == ["node", "pid", "state", "role", "epoch"]
    assert "2 LEADERS: r0, r1" in text
    with pytest.raises(ValueError):
        Display.decode({"roles": "nonsense", "columns": []})
