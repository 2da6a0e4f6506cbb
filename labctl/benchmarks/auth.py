"""What the lab's authentication costs: the router and a Raft lab, authenticated and open.

    labctl bench auth [--quick] [--json]
    python -m labctl.benchmarks.auth [--quick]            (prints one JSON object)

Every socket of a lab is a ZeroMQ PLAIN server checked at the handshake (nodes/auth.py),
and the router takes a frame's source from the name its connection authenticated as. The
hardening issue's budget is under 5% on the router hop and on the Raft benchmark:

- router: the forwarding-rate run of labctl/benchmarks/router.py (one sender, one echo)
  with a fresh lab secret on every socket, and with none; the router's CPU per frame and
  frames/s;
- raft: `labctl bench raft`'s closed-loop throughput (3 replicas, fsync on, 4 generators x
  64 in flight) in a lab as `labctl up` makes it and in one started with
  `open_endpoints` (no secret, no ZAP handler: a benchmark-only lab config key, which no
  CLI option or scenario key sets); committed writes/s and the router's CPU per 1,000
  committed writes/s.

Rounds are interleaved A/B pairs (labctl/benchmarks/ab.py): read the ratios.
"""

from __future__ import annotations

import os
from typing import Any

from labctl.benchmarks import ab
from labctl.benchmarks.labs import quick_main, run_terminable
from labctl.benchmarks.procs import say as _say

BUDGET_PCT = 5.0
WORDS = ("authenticated", "open")


def run(quick: bool = False) -> dict[str, Any]:
    return run_terminable(_run, quick)


def _run(quick: bool) -> dict[str, Any]:
    from labctl.benchmarks import router

    out: dict[str, Any] = {"budget_pct": BUDGET_PCT,
                           "loadavg_before": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip
    rounds = 2 if quick else 5
    messages = 10_000 if quick else 50_000
    _say(f"router forwarding rate, {rounds} rounds each way ...")
    out["router"] = ab.router_rounds(
        rounds, messages,
        lambda on: router.run(messages=messages, pings=200, authenticated=on), WORDS,
    )  # fmt: skip
    raft_n = 1 if quick else 3
    _say(f"raft closed-loop throughput, {raft_n} rounds each way ...")
    out["raft"] = ab.raft_rounds(raft_n, 1.0 if quick else 1.5, 3.0 if quick else 6.0,
                                 {True: {}, False: {"open_endpoints": True}}, WORDS)  # fmt: skip
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    out["cpus"] = os.cpu_count()
    return out


def main(argv: list[str] | None = None) -> None:
    quick_main("labctl.benchmarks.auth", run, argv)


if __name__ == "__main__":
    main()
