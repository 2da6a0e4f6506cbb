"""The report page: one self-contained HTML file (inline CSS, PNG figures as data: URIs,
no script, nothing fetched), in the order a reader asks: did it pass, what was run, what
happened over time, to whom, what broke and the messages around it."""

from __future__ import annotations

import base64
import html
import json
from collections import defaultdict
from typing import Any

from labctl.report.data import RunData, Violation
from labctl.report.figures import violation_marks

CSS = """
body{font:14px/1.45 -apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;
  color:#1b1b1b;background:#fafafa}
main{max-width:1140px;margin:0 auto;padding:18px 22px 60px}
h1{font-size:22px;margin:6px 0 4px} h2{font-size:17px;margin:28px 0 8px;
  border-bottom:1px solid #ddd;padding-bottom:4px}
.verdict{display:inline-block;padding:3px 12px;border-radius:4px;font-weight:700;
  color:#fff;margin-right:10px;letter-spacing:.03em}
.pass,.safe{background:#2a9d8f}.fail,.unsafe{background:#d62828}
.sub{color:#555;margin:2px 0 14px}
table{border-collapse:collapse;font-size:13px;margin:4px 0 10px}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0}
.met{color:#2a9d8f;font-weight:700}.unmet{color:#d62828;font-weight:700}
figure{margin:8px 0 18px;background:#fff;border:1px solid #e2e2e2;padding:6px}
figure img{max-width:100%;display:block}
figcaption{font-size:12.5px;color:#444;margin-top:4px}
nav a{margin-right:14px}
.grid{display:grid;grid-template-columns:auto 1fr;gap:2px 14px;font-size:13px}
.grid b{color:#333}
details{margin:2px 0}pre{background:#f4f4f4;padding:6px;overflow-x:auto;font-size:12px;
  margin:4px 0}
.letter{font-weight:700;color:#d62828}
.note{color:#7a5c00;background:#fff6d6;border:1px solid #f0dc9a;padding:4px 8px;
  border-radius:3px;display:inline-block}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _params(run: RunData) -> str:
    p = run.params
    rows = [
        ("protocol", p["protocol"]),
        ("mutation", p["mutation"]),
        ("seed", p["seed"]),
        ("nodes", f"{p['nodes']} ({', '.join(run.replicas)})"),
        ("workload", _workload(p["workload"])),
        ("options", ", ".join(f"{k}={v}" for k, v in p["options"].items()) or "defaults"),
        ("broker fencing", "on" if p["fencing"] else "off"),
        ("duration", f"{p['duration_s']} s"),
        ("faults", "; ".join(f"F{f.n} {f.label}" for f in run.faults) or "none"),
    ]
    cells = "".join(f"<b>{_e(k)}</b><span>{_e(v)}</span>" for k, v in rows)
    return f'<div class="grid">{cells}</div>'


def _workload(w: Any) -> str:
    if not isinstance(w, dict):
        return "none"
    return (
        f"{w.get('kind')} at {w.get('rate')} ops/s from {w.get('clients')} clients "
        f"(target {w.get('target')}, reads {w.get('reads')})"
    )


def _expectations(run: RunData) -> str:
    if not run.expectations:
        return "<p>No expectations (not a scenario run): the verdict is the checkers'.</p>"
    rows = "".join(
        f'<tr><td class="{"met" if x.get("met") else "unmet"}">'
        f"{'met' if x.get('met') else 'NOT met'}</td><td>{_e(x.get('expect'))}</td></tr>"
        for x in run.expectations
    )
    return f"<table><tr><th></th><th>expectation</th></tr>{rows}</table>"


def _faults(run: RunData) -> str:
    if not run.faults:
        return "<p>No faults were injected.</p>"
    rows = "".join(
        f"<tr><td>F{f.n}</td><td>{_e(f.label)}</td><td>{run.rel(f.start):.2f} s</td>"
        f"<td>{f'{run.rel(f.end):.2f} s' if f.healed else 'not healed'}</td></tr>"
        for f in run.faults
    )
    return f"<table><tr><th></th><th>fault</th><th>from</th><th>until</th></tr>{rows}</table>"


def _violations(run: RunData, evidence_per_kind: int = 3) -> str:
    if not run.violations:
        return "<p>No violation: every checker stayed silent.</p>"
    by_kind: dict[str, list[Violation]] = defaultdict(list)
    for v in run.violations:
        by_kind[v.kind].append(v)
    letters = {kind: letter for letter, kind, _ in violation_marks(run)}
    out = [
        "<table><tr><th>mark</th><th>kind</th><th>count</th><th>first</th><th>last</th>"
        "<th>nodes</th><th>first detail</th></tr>"
    ]
    for kind, vs in by_kind.items():
        nodes = sorted({n for v in vs for n in v.nodes})
        out.append(
            f'<tr><td class="letter"><a href="#timelines">{letters.get(kind, "")}</a></td>'
            f"<td>{_e(kind)}</td><td>{len(vs)}</td><td>{run.rel(vs[0].t):.3f} s</td>"
            f"<td>{run.rel(vs[-1].t):.3f} s</td><td>{_e(', '.join(nodes))}</td>"
            f"<td>{_e(vs[0].detail)}</td></tr>"
        )
    out.append("</table>")
    out.append(
        "<p>The letter marks each kind's first violation on the "
        '<a href="#timelines">timelines</a>, the <a href="#rate">rate</a> and '
        '<a href="#latency">latency</a> plots; the <a href="#spacetime">space-time '
        "diagram</a> shows the messages around it.</p>"
    )
    for kind, vs in by_kind.items():
        out.append(f"<h3>{letters.get(kind, '')} {_e(kind)} ({len(vs)})</h3>")
        for v in vs[:evidence_per_kind]:
            ev = json.dumps(v.evidence, indent=1, default=str)
            if len(ev) > 4000:
                ev = ev[:4000] + "\n... (cut)"
            out.append(
                f"<details><summary>t={run.rel(v.t):.3f} s · {_e(', '.join(v.nodes))} · "
                f'{_e(v.detail)} (<a href="#timelines">timelines</a>)</summary>'
                f"<pre>{_e(ev)}</pre></details>"
            )
        if len(vs) > evidence_per_kind:
            out.append(
                f"<p>... and {len(vs) - evidence_per_kind} more (all in events.jsonl; "
                "`labctl check RUN` lists them).</p>"
            )
    return "".join(out)


def _trace_note(trace_info: dict[str, Any]) -> str:
    if trace_info.get("error"):
        return (
            f'<p class="note">The message trace could not be read ({_e(trace_info["error"])}):'
            " the diagram shows events only.</p>"
        )
    if trace_info.get("missing"):
        return (
            '<p class="note">This run has no message trace (trace.bin): the diagram '
            "shows events only.</p>"
        )
    parts = [f"{trace_info['kept']:,} frames traced"]
    not_kept = trace_info.get("not_kept") or {}
    if not_kept:
        total = sum(not_kept.values())
        parts.append(
            f"{total:,} more not kept (the cap; "
            + ", ".join(f"{k} {v:,}" for k, v in not_kept.items())
            + ")"
        )
    if trace_info.get("torn"):
        parts.append("the last chunk was torn (the router died mid-write)")
    cls = "note" if not_kept or trace_info.get("torn") else ""
    return f'<p class="{cls}">Message trace: {"; ".join(parts)}.</p>'


def _meaning(run: RunData) -> str:
    """What the badge means: a scenario's verdict is about its expectations, which for a
    protocol meant to break (naive) include finding violations."""
    n = len(run.violations)
    if run.expectations:
        met = sum(1 for x in run.expectations if x.get("met"))
        found = f"; {n} violations were found" if n else "; no violation was found"
        word = "PASS" if run.verdict == "pass" else "FAIL"
        return (
            f"{word}: {met} of {len(run.expectations)} of the scenario's expectations met "
            f"(listed below){found}."
        )
    if n:
        return f"UNSAFE: the checkers found {n} violations."
    return "SAFE: every checker stayed silent."


def render(
    run: RunData, figures: dict[str, bytes], spacetime: dict[str, Any], trace_info: dict[str, Any]
) -> str:
    verdict = run.verdict
    title = f"{run.name} · {run.protocol}"
    counts = ", ".join(f"{k} {len(v)}" for k, v in run.ops.items())
    nviol = len(run.violations)
    fates = ", ".join(f"{k} {v}" for k, v in sorted(spacetime.get("fates", {}).items()))
    t0, t1 = spacetime.get("window", (0, 0))
    body = f"""
<main>
<h1><span class="verdict {_e(verdict)}">{_e(verdict.upper())}</span>{_e(title)}</h1>
<p class="sub">{_e(_meaning(run))}<br>{nviol} violations · operations: {run.invoked}
invoked, {counts} · run record <code>{_e(run.path)}</code></p>
<nav><a href="#params">parameters</a><a href="#rate">throughput</a><a href="#latency">latency</a>
<a href="#timelines">timelines</a><a href="#violations">violations</a>
<a href="#spacetime">space-time diagram</a></nav>
<h2 id="params">Expectations and parameters</h2>
{_expectations(run)}
{_params(run)}
<h3>Faults</h3>
{_faults(run)}
<h2 id="rate">Throughput over time</h2>
<figure>{img(figures["rate"], "throughput over time")}
<figcaption>Operations completed per second: ok (acknowledged), fail (definitely not
done), info (outcome unknown, e.g. timed out). Shaded bands are faults (F1...), dashed red
lines the first violation of each kind (A...).</figcaption></figure>
<h2 id="latency">Latency over time</h2>
<figure>{img(figures["latency"], "latency of every operation")}
<figcaption>Every operation at the time it completed, by latency (log scale).</figcaption>
</figure>
<h2 id="timelines">Per-node timelines</h2>
<figure>{img(figures["timelines"], "per-node timelines")}
<figcaption>Role and {run.term_word} of each node (from its status reports and role
events), paused and killed intervals, leases as each node believed them in true time
(overlaps in red: two nodes both thought they held the lease), commit and applied
index.</figcaption></figure>
<h2 id="violations">Violations</h2>
{_violations(run)}
<h2 id="spacetime">Space-time diagram</h2>
{_trace_note(trace_info)}
<figure>{img(figures["spacetime"], "space-time diagram")}
<figcaption>{t0:.2f}-{t1:.2f} s, {_e(spacetime.get("why", ""))}. One vertical line per
node, time downwards; every frame the router carried is an arrow from when it reached the
router to when the router delivered it (slanted: delayed). A red cross is a frame that
never arrived ({_e(fates) or "none in this window"}). The message type is written on the
first arrow of each run of same-type frames on a link. Stars: became leader; triangles:
became follower or stepped down. Ringed in red: the first violation's evidence. Another
window: <code>labctl report RUN --window T0:T1</code> (seconds since start).</figcaption>
</figure>
</main>"""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(verdict)}: {_e(title)}</title><style>{CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )
