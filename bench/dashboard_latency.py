"""How long after a node's event the dashboard shows it (goal: <= 200 ms).

    .venv/bin/python bench/dashboard_latency.py [rounds]

A real naive lab of 3; in each round the leader is cut off and we time, on the machine's
monotonic clock (the lab's true time), from each self-promotion event (events.jsonl) to the
moment the dashboard's nodes panel renders that node as a competing leader.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from labctl import api
from labctl.cli.lab import lab_config
from tui.app import make_app
from tui.widgets.grid import row_styles_of
from tui.widgets.nodes import SPLIT_BRAIN_STYLE, NodesPanel


async def one_round() -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        lab = api.up(Path(tmp) / "lab", lab_config("naive", 3, 42, {}, False))
        try:
            app = make_app(lab.lab_dir)
            async with app.run_test(size=(120, 36)) as pilot:
                while app.model.leaders != ["r0"]:
                    await pilot.pause(0.01)
                await pilot.pause(0.5)
                lab.fault({"fault": "partition", "from": "r0", "to": "r1,r2"})
                shown: dict[str, float] = {}
                deadline = time.monotonic() + 5
                while len(shown) < 2 and time.monotonic() < deadline:
                    styles = row_styles_of(app.query_one(NodesPanel).render())[1:]
                    ids = list(app.model.nodes)
                    for i, style in enumerate(styles):
                        if style == SPLIT_BRAIN_STYLE and ids[i] != "r0":
                            shown.setdefault(ids[i], time.monotonic())
                    await pilot.pause(0.002)
        finally:
            answer = lab.down()
        events = [
            json.loads(x) for x in Path(answer["run_dir"], "events.jsonl").read_text().splitlines()
        ]
        promoted = {
            e["src"]: e["t"]
            for e in events
            if e["kind"] == "became_leader" and e["how"] == "self-promoted"
        }
        return [(shown[n] - promoted[n]) * 1000 for n in shown if n in promoted]


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    delays: list[float] = []
    for _ in range(rounds):
        delays += asyncio.run(one_round())
    delays.sort()
    print(
        json.dumps(
            {
                "samples": len(delays),
                "median_ms": round(statistics.median(delays), 1),
                "max_ms": round(delays[-1], 1),
                "all_ms": [round(d, 1) for d in delays],
            }
        )
    )


if __name__ == "__main__":
    main()
