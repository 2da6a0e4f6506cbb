"""What `labctl protocols` and `labctl --version` say about each protocol, kept in a cache.

Importing every protocol to print four lines costs more than the rest of a CLI call, so
the catalogue (name, description, default size, options and their defaults) is written to
a cache file the first time and reused while no protocol changed: the fingerprint is the
registered entry points and every source file's path, size and mtime, under protocols/
and in each plugin's package. The protocols remain the only place these facts are
declared.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import labctl

_PROTOCOLS_DIR = Path(__file__).resolve().parent.parent / "protocols"


def version() -> str:
    return labctl.__version__


def _fingerprint() -> str:
    import importlib.util

    import protocols

    h = hashlib.sha1()
    where = {_PROTOCOLS_DIR}
    for name, spec in protocols.registry().items():
        h.update(f"{name}={spec};".encode())
        top = spec.partition(":")[0].partition(".")[0]
        try:  # a plugin's package, found without importing it
            found = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            found = None
        if found is not None and found.origin and found.origin != "built-in":
            origin = Path(found.origin)
            where.add(origin.parent if origin.name == "__init__.py" else origin)
    for place in sorted(where):
        _fingerprint_files(h, place)
    h.update(version().encode())
    return h.hexdigest()


def _fingerprint_files(h: Any, place: Path) -> None:
    if place.is_file():
        st = place.stat()
        h.update(f"{place}:{st.st_size}:{st.st_mtime_ns};".encode())
        return
    for root, dirs, files in os.walk(place):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                st = os.stat(os.path.join(root, name))
                h.update(f"{root}/{name}:{st.st_size}:{st.st_mtime_ns};".encode())


def _cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    where = hashlib.sha1(str(_PROTOCOLS_DIR).encode()).hexdigest()[:12]
    return Path(base) / "labctl" / f"catalogue-{where}.json"


def build() -> list[dict[str, Any]]:
    """The catalogue from the protocols themselves (imports every one)."""
    import msgspec

    import protocols

    rows = []
    for name in protocols.available():
        cls = protocols.get(name)
        rows.append(
            {
                "name": name,
                "description": cls.description,
                "default_nodes": cls.default_nodes,
                "options": msgspec.to_builtins(cls.Options()),
                "byzantine_modes": list(cls.byzantine_modes),
                "leader_word": cls.leader_word,
                "term_word": cls.term_word,
                "unsafe_by_design": cls.unsafe_by_design,
            }
        )
    return rows


def words(protocol: str) -> tuple[str, str]:
    """(leader word, term word) of `protocol`: ("primary", "view") for PBFT."""
    for row in catalogue():
        if row["name"] == protocol:
            return row.get("leader_word", "leader"), row.get("term_word", "term")
    return "leader", "term"


def catalogue() -> list[dict[str, Any]]:
    """Every available protocol, from the cache when it is current."""
    fingerprint = _fingerprint()
    path = _cache_path()
    try:
        doc = json.loads(path.read_text())
        if doc.get("fingerprint") == fingerprint:
            return doc["protocols"]
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    rows = build()
    try:  # a cache we cannot write only costs the next call the imports again
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"fingerprint": fingerprint, "protocols": rows}))
        os.replace(tmp, path)
    except OSError:
        pass
    return rows
