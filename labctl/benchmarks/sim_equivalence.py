"""the simulator's fingerprint: proof that a speed-up changed nothing a run records

A speed-up of the simulated hot path (protocols/, sim/, protocols/simnet.py) must leave
every run byte-identical. This records, for each case, sha256 of the run directory's
events.jsonl, history.jsonl, trace.bin and summary.json (and of the lab's own summary, the
one the checkers' summary goes into) with the wall-clock fields dropped:

- `sim run` of every built-in scenario for the file's own protocol and for Raft, EPaxos
  and PBFT (a scenario a protocol rejects records its error, which must not change either),
  at two seeds;
- every tests/mutant_scenarios/*.toml, with and without its mutation;
- `labctl chaos` scenarios (chaos.random_scenario) for each protocol and size;
- `explore` runs (explore.generate + explore.check, as bench sim's explore_rate runs them):
  the verdict, the violation kinds and count, the virtual time, the first violation, the
  concrete schedule, and sha256 of every event and history record the checkers were fed.

    python -m labctl.benchmarks.sim_equivalence --out /tmp/base.json       # on main
    python -m labctl.benchmarks.sim_equivalence --check /tmp/base.json     # after a change

`--check` exits 1 and names each case whose fingerprint differs. Runs go in parallel
(`--jobs`); each in its own lab dir under a temporary directory. To compare commits
without touching a worktree: `git archive REV | tar -x -C DIR` and run it there with
`PYTHONPATH=DIR`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import traceback
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parents[2]
MUTANTS = ROOT / "tests" / "mutant_scenarios"
PROTOCOLS = ("raft", "epaxos", "pbft")
WALL = {"wall_s", "speed", "run_dir", "t0"}  # summary fields that are wall clock or paths


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _clean(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {k: _clean(v) for k, v in doc.items() if k not in WALL}
    if isinstance(doc, list):
        return [_clean(v) for v in doc]
    return doc


def cases(explore_runs: int, protocols_: tuple[str, ...]) -> list[tuple[str, ...]]:
    from labctl import scenarios

    out: list[tuple[str, ...]] = []
    builtin = Path(scenarios.__file__).parent
    for path in sorted(builtin.glob("*.toml")):
        for protocol in ("", *protocols_):
            for seed in ("", "11"):
                out.append(("builtin", str(path), protocol, seed))
    for path in sorted(MUTANTS.glob("*.toml")):
        if path.stem.split("-")[0] in protocols_:
            out.append(("mutant", str(path), "", ""))
            out.append(("mutant", str(path), "mutate", ""))
    import protocols

    for protocol in protocols_:
        for n in protocols.get(protocol).test_sizes:
            for seed in (7, 8):
                out.append(("chaos", protocol, str(n), str(seed)))
        for i in range(explore_runs):
            out.append(("explore", protocol, str(i), ""))
    return out


def _run_files(sc: Any) -> dict[str, Any]:
    from labctl import rundir, simrun

    lab_summaries: list[Any] = []
    original = rundir.RunDir.write_summary

    def keep(self: Any, summary: dict[str, Any]) -> None:
        lab_summaries.append(_clean(json.loads(json.dumps(summary, default=str))))
        original(self, summary)

    rundir.RunDir.write_summary = keep  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory(prefix="simcore-eq-") as tmp:
            code, summary = simrun.execute(sc, tmp, talk=False)
            runs = sorted(p for p in Path(tmp, "runs").iterdir() if not p.is_symlink())
            run = runs[-1]
            out: dict[str, Any] = {"code": code}
            for name in ("events.jsonl", "history.jsonl", "trace.bin"):
                f = run / name
                out[name] = _sha(f.read_bytes()) if f.exists() else None
            out["summary"] = _sha(json.dumps(_clean(summary), sort_keys=True).encode())
            out["lab_summary"] = _sha(json.dumps(lab_summaries, sort_keys=True).encode())
            out["verdict"] = summary.get("verdict")
    finally:
        rundir.RunDir.write_summary = original  # type: ignore[method-assign]
    return out


class _HashRun:
    """Stands in for a RunDir: hashes what would be written, writes nothing."""

    def __init__(self) -> None:
        self.enc = msgspec.json.Encoder()
        self.events = hashlib.sha256()
        self.hist = hashlib.sha256()

    def event(self, rec: dict[str, Any]) -> None:
        self.events.update(self.enc.encode(rec) + b"\n")

    def history(self, rec: dict[str, Any]) -> None:
        self.hist.update(self.enc.encode(rec) + b"\n")


def _explore(protocol: str, i: int) -> dict[str, Any]:
    import protocols
    from labctl import explore, simrun

    runs: list[_HashRun] = []
    original = simrun.CheckingSink

    class Hashing(original):  # type: ignore[misc, valid-type]
        def __init__(self, sc: Any, run: Any = None, talk: bool = False) -> None:
            runs.append(_HashRun())
            super().__init__(sc, runs[-1], talk)

    sizes = protocols.get(protocol).test_sizes
    simrun.CheckingSink = Hashing  # type: ignore[misc]
    try:
        sc, director = explore.generate(protocol, sizes[i % len(sizes)], 5000 + i)
        o = explore.check(sc, director)
    finally:
        simrun.CheckingSink = original  # type: ignore[misc]
    return {"kinds": o.kinds, "violations": o.violations, "virtual_s": o.virtual_s,
            "failure": o.failure, "first": _sha(json.dumps(o.first, sort_keys=True,
                                                           default=str).encode()),
            "schedule": _sha(explore.scenario_toml(o.scenario).encode()) if o.scenario else None,
            "events": runs[0].events.hexdigest(), "history": runs[0].hist.hexdigest()}  # fmt: skip


def fingerprint(case: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    from labctl import chaos
    from labctl.scenario.format import load, set_mutation

    key = "|".join(case).replace(str(ROOT) + "/", "")
    try:
        kind = case[0]
        if kind == "builtin":
            _, path, protocol, seed = case
            sc = load(path, protocol or None)
            if seed:
                sc.seed = int(seed)
            return key, _run_files(sc)
        if kind == "mutant":
            _, path, mutate, _ = case
            sc = load(path)
            if mutate:
                set_mutation(sc, Path(path).stem.removeprefix(f"{sc.protocol}-"))
            return key, _run_files(sc)
        if kind == "chaos":
            _, protocol, n, seed = case
            return key, _run_files(chaos.random_scenario(protocol, int(n), 12.0, int(seed)))
        return key, _explore(case[1], int(case[2]))
    except Exception as e:  # a scenario a protocol rejects: its error is its fingerprint
        # Paths relative to the checkout, so two checkouts of one commit agree.
        where = traceback.format_exc().splitlines()[-3:-1]
        return key, {"error": f"{type(e).__name__}: {e}".replace(f"{ROOT}/", ""),
                     "where": [w.replace(f"{ROOT}/", "") for w in where]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="write the fingerprints here")
    ap.add_argument("--check", help="compare with fingerprints written by --out")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--explore-runs", type=int, default=50)
    ap.add_argument("--protocol", action="append", help="only these (default: all three)")
    a = ap.parse_args(argv)
    todo = cases(a.explore_runs, tuple(a.protocol or PROTOCOLS))
    # Longest first (PBFT and explore), so the pool does not end on one long run.
    todo.sort(key=lambda c: (c[0] != "explore", "pbft" not in "".join(c)))
    with ProcessPoolExecutor(a.jobs) as pool:
        got = dict(pool.map(fingerprint, todo, chunksize=1))
    got = dict(sorted(got.items()))
    if a.out:
        Path(a.out).write_text(json.dumps(got, indent=1, sort_keys=True))
        print(f"{len(got)} cases -> {a.out}")
    if a.check:
        base = json.loads(Path(a.check).read_text())
        diff = [k for k in got if k in base and base[k] != got[k]]
        missing = [k for k in base if k not in got]
        for k in diff:
            print(f"DIFFERS {k}\n  was {base[k]}\n  now {got[k]}")
        compared = len([k for k in got if k in base])
        print(f"{compared} cases compared, {len(diff)} differ"
              + (f", {len(missing)} not run" if missing else ""))  # fmt: skip
        return 1 if diff else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
