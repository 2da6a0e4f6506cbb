"""`labctl wal dump DIR`: a replica's binary write-ahead log as one line per record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from labctl.cli.common import Json, LabDir, say
from labctl.errors import LabError

app = typer.Typer(help="Read replicas' write-ahead logs.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Read replicas' write-ahead logs (binary, checksummed records)."""


def wal_files(where: Path) -> list[Path]:
    """The WAL files `where` names: a wal.log, a node's data dir, or a whole run."""
    if where.is_file():
        return [where]
    if (where / "wal.log").is_file():
        return [where / "wal.log"]
    if (where / "data").is_dir():
        return sorted((where / "data").glob("*/wal.log"))
    return []


def protocol_of(wal: Path) -> str | None:
    """The protocol that wrote `wal`: from the lab.json of the run it belongs to."""
    for parent in wal.parents:
        lab = parent / "lab.json"
        if lab.is_file():
            try:
                return json.loads(lab.read_text())["config"]["protocol"]
            except (OSError, ValueError, KeyError, TypeError):
                return None
    return None


def dump_records(wal: Path, protocol: str) -> tuple[list[dict[str, Any]], int, int]:
    """(records as {"n", "type", fields...}, bytes of the valid prefix, file size)."""
    import msgspec

    import protocols
    from nodes.wal import read_records
    from nodes.wire import RecordCodec, WireError

    codec = RecordCodec(protocols.get(protocol).records)
    payloads, good_end, _corruption = read_records(wal)  # a corrupt record ends the prefix
    out = []
    for i, p in enumerate(payloads, 1):
        try:
            rec = codec.decode(p)
            out.append({"n": i, "type": type(rec).__name__, **msgspec.to_builtins(rec)})
        except (msgspec.DecodeError, msgspec.ValidationError, WireError) as e:
            out.append({"n": i, "type": "undecodable", "bytes": len(p), "error": str(e)})
    return out, good_end, wal.stat().st_size


@app.command("dump")
def dump(
    where: Annotated[
        str,
        typer.Argument(
            metavar="DIR",
            help="A node's data dir (runs/<run>/data/r0), its wal.log, a run dir, "
            "a run's name or latest.",
        ),
    ],
    protocol: Annotated[
        str | None,
        typer.Option(
            "--protocol",
            "-p",
            metavar="NAME",
            help="Decode as this protocol (default: the run's, from lab.json).",
        ),
    ] = None,
    json_out: Json = False,
    lab_dir: LabDir = None,
) -> None:
    """Print every record of a WAL, oldest first.

    With --json one JSON object per line."""
    import protocols

    path = Path(where)
    files = wal_files(path)
    if not files and not path.exists():
        from labctl.runs import find_run

        files = wal_files(find_run(where, lab_dir))
    if not files:
        raise LabError(f"{where}: no wal.log there (give runs/<run>/data/<node> or a run)")
    for wal in files:
        name = protocol or protocol_of(wal)
        if name is None:
            raise LabError(f"{wal}: no lab.json above it says the protocol; pass --protocol")
        try:
            records, good_end, size = dump_records(wal, name)
        except protocols.UnknownProtocol as e:
            raise LabError(str(e)) from None
        node = wal.parent.name
        if not json_out:
            torn = f", {size - good_end} bytes of torn tail" if size > good_end else ""
            say(f"{wal}: {len(records)} records ({name}, {good_end} bytes{torn})")
        for r in records:
            if json_out:
                typer.echo(json.dumps({"node": node, **r}, default=str))
            else:
                fields = " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in r.items()
                                  if k not in ("n", "type"))  # fmt: skip
                typer.echo(f"{node} {r['n']:>6} {r['type']:<14} {fields}")
