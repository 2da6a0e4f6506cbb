"""`labctl protocols` and `--version` read a cached catalogue of what the protocols declare;
the cache is rebuilt when the protocols' files change, and never lies about them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labctl import catalogue


def test_the_cache_matches_the_protocols_and_follows_their_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    rows = catalogue.catalogue()
    assert rows == catalogue.build()
    assert {r["name"]: r["default_nodes"] for r in rows}["pbft"] == 4
    assert catalogue.words("pbft") == ("primary", "view")
    cache = next(tmp_path.glob("labctl/catalogue-*.json"))
    doc = json.loads(cache.read_text())
    doc["protocols"][0]["description"] = "stale"
    cache.write_text(json.dumps(doc))
    assert catalogue.catalogue()[0]["description"] == "stale"  # served from the cache...
    monkeypatch.setattr(catalogue, "_fingerprint", lambda: "a protocol file changed")
    assert catalogue.catalogue() == catalogue.build()  # ...until a protocol file changes
