"""The dashboard app: layout, key bindings, and the fold of worker messages into the model.

    make_app(lab_dir)            the app on a real lab (the CLI's `labctl dash` and `up`)
    make_app(source=FakeSource.demo())   the same app on canned data (tests, snapshots)
    run_dashboard(lab_dir, stop_on_quit_prompt)   run it; stop the lab after if asked to

Data flows one way: workers (tui/telemetry.py) post messages, handlers here fold them into
the `LabModel`, and a 10 Hz tick hands the model to the panels, which re-render only when it
changed. Actions run in thread workers and report back with a notification; a failure is
a LabError message on screen, never a crash.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from tui import actions
from tui.actions import ACTIONS, Action
from tui.messages import (
    ActionDone,
    LabSwapped,
    LabUnreachable,
    ScenarioAttached,
    ScenarioDone,
    StatusPolled,
    TelemetryBatch,
)
from tui.model import LabModel
from tui.screens.dialog import ActionDialog
from tui.screens.help import HelpScreen
from tui.screens.quit import LEAVE, STOP, QuitScreen
from tui.source import LiveSource, Source
from tui.telemetry import POLL_INTERVAL, TelemetryWorkers
from tui.widgets.charts import ChartsPanel
from tui.widgets.events import EventsPanel
from tui.widgets.faults import FaultsPanel
from tui.widgets.links import LinksPanel
from tui.widgets.nodes import NodesPanel

REFRESH_HZ = 10.0
COUNTDOWN_REFRESH = 0.25  # seconds: pause countdowns and lease bars move without telemetry
PANELS = ("links", "events", "charts", "faults")
WIDE_MIN_WIDTH = 100
VIOLATION_TOAST = 5.0  # seconds: at most one violation toast this often (the title counts all)
MALFORMED = (KeyError, TypeError, ValueError, AttributeError)
_MAIN_ONLY = frozenset({"act", "panel", "help", "request_quit"})


def _bindings() -> list[BindingType]:
    # quit and help first: an 80-column footer cuts off whatever comes last.
    keys: list[BindingType] = [
        Binding("q", "request_quit", "quit"),
        Binding("question_mark", "help", "help", key_display="?"),
    ]
    keys += [Binding(a.key, f"act('{a.name}')", a.title.lower(), show=a.show)
             for a in ACTIONS.values()]  # fmt: skip
    keys += [Binding(str(i + 1), f"panel('{p}')", p, show=False) for i, p in enumerate(PANELS)]
    keys += [
        Binding("e", "report", "report", show=False),
        Binding("ctrl+c", "interrupt", "quit", show=False, priority=True),
    ]
    return keys


class LabApp(TelemetryWorkers, App[str | None]):
    CSS_PATH: ClassVar[list[str | Path]] = ["styles/app.tcss", "styles/dialogs.tcss"]  # type: ignore[misc]
    TITLE = "labctl dash"
    BINDINGS: ClassVar[list[BindingType]] = _bindings()

    def __init__(
        self,
        source: Source,
        *,
        stop_on_quit_prompt: bool = False,
        poll_interval: float | None = POLL_INTERVAL,
        refresh_hz: float = REFRESH_HZ,
    ) -> None:
        super().__init__()
        self.source = source
        self.poll_interval = poll_interval
        self.refresh_hz = refresh_hz
        self.ask_stop_on_quit = stop_on_quit_prompt
        self.model = LabModel()
        self.panel = "events"  # the lower panel shown in the compact layout
        self._wake_poll = threading.Event()
        self._dies_with_us = False
        self._feed_lost = False
        self._protocols: list[str] = []
        self._scenario: str | None = None  # the built-in scenario playing now (key n)
        self._verdict: tuple[str, str, str] | None = None  # the last one's (name, verdict, found)
        self._last_countdown = 0.0
        self._last_toast = -VIOLATION_TOAST
        self._titles: tuple[str, str] = ("", "")
        m = self.model
        self._panels: tuple[NodesPanel, LinksPanel, EventsPanel, ChartsPanel, FaultsPanel] = (
            NodesPanel(m, id="nodes"), LinksPanel(m, id="links"), EventsPanel(m, id="events"),
            ChartsPanel(m, id="charts"), FaultsPanel(m, id="faults"),
        )  # fmt: skip
        # Kept, not queried: App.query_one looks in the screen on top, a dialog's at times.
        self._dash = Vertical(id="dash")

    # -- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        from textual.widgets import Footer

        nodes, links, events, charts, faults = self._panels
        with self._dash:
            yield nodes
            with Horizontal(id="bottom"):
                yield links
                yield events
                with Vertical(id="side"):
                    yield charts
                    yield faults
        yield Footer()

    def on_mount(self) -> None:
        self._apply_layout()
        self.start_poller()
        self.start_feed()
        self._probe_lab()
        self.set_interval(1.0 / self.refresh_hz, self._tick)

    def on_unmount(self) -> None:
        self._wake_poll.set()  # let the poller's thread see its cancellation at once

    def on_resize(self) -> None:
        self._apply_layout()

    def _apply_layout(self) -> None:
        """Wide: every panel at once. Compact (80x24 and up to 9 replicas): the nodes and one
        lower panel, switched with 1-4."""
        width, height = self.size
        n = max(3, len(self.model.nodes))
        wide = width >= WIDE_MIN_WIDTH and height >= n + 20
        dash = self._dash
        dash.set_class(not wide, "compact")
        for p in PANELS:
            dash.set_class(p == self.panel, f"show-{p}")
        self._update_titles(force=True)

    # -- the refresh tick ------------------------------------------------------------------

    def _tick(self) -> None:
        self.model.advance(self.source.now())
        now = time.monotonic()
        countdown = False
        if now - self._last_countdown >= COUNTDOWN_REFRESH:
            self._last_countdown = now
            countdown = any(
                s.get("state") == "paused" or s.get("lease_true") is not None
                for s in self.model.nodes.values()
            )
        self.refresh_panels(countdown)

    def refresh_panels(self, force: bool = False) -> None:
        m = self.model
        nodes, links, events, charts, faults = self._panels
        nodes.show(m, force=force)
        links.show(m)
        events.show(m)
        charts.show(m)
        faults.show(m)
        self._update_titles()

    def _update_titles(self, force: bool = False) -> None:
        titles = (self._nodes_title(), self._lower_title())
        if titles == self._titles and not force:
            return
        self._titles = titles
        nodes, *lower = self._panels
        nodes.border_title = titles[0]
        compact = self._dash.has_class("compact")
        for p, panel in zip(PANELS, lower, strict=True):
            title = titles[1] if compact else p
            if p == "faults" and not compact and self.model.faults:
                title = f"faults in force ({len(self.model.faults)})"
            panel.border_title = title

    def _nodes_title(self) -> str:
        m = self.model
        if m.notice:
            return f"[bold yellow]{escape(m.notice)}[/]"
        if m.unreachable:
            return f"[bold red]{escape(m.unreachable)}[/] [dim](waiting for a lab)[/]"
        if not m.has_status:
            return "connecting…"
        up = m.uptime() or 0.0
        parts = [f"[bold magenta]scenario {escape(self._scenario)}[/]"] if self._scenario else []
        if self._verdict is not None and not self._scenario:
            name, verdict, _ = self._verdict
            color = "green" if verdict == "pass" else "red"
            parts.append(f"[bold {color}]{escape(name)}: {escape(verdict.upper())}[/]")
        parts += [f"[bold]{escape(m.protocol)}[/]"]
        if m.mutate:  # broken on purpose: nobody should mistake this lab for the real thing
            parts.append(f"[bold white on dark_red] MUTANT {escape(m.mutate)} [/]")
        parts += [f"{len(m.nodes)} replicas", f"seed {m.seed}",
                  f"up {int(up // 60)}:{int(up % 60):02d}"]  # fmt: skip
        leaders = m.leaders
        if len(leaders) > 1:
            parts.append(f"[bold white on red] {len(leaders)} LEADERS: {', '.join(leaders)} [/]")
        elif leaders:
            parts.append(f"{m.words[0]} [bold green]{leaders[0]}[/]")  # PBFT: "primary r1"
        elif m.leaderless:
            parts.append("leaderless")  # EPaxos: every replica leads its own commands
        else:
            parts.append(f"[yellow]no {m.words[0]}[/]")
        if m.violations:
            parts.append(f"[bold red]{m.violations} violation{'s' if m.violations > 1 else ''}[/]")
        if m.workload:
            w, ops = m.workload, m.ops
            parts.append(f"[cyan]workload {escape(str(w.get('kind')))} {w.get('rate')}/s[/] "
                         f"ops ok {ops.get('ok', 0)} fail {ops.get('fail', 0)} "
                         f"info {ops.get('info', 0)}")  # fmt: skip
        return " · ".join(parts)

    def _lower_title(self) -> str:
        out = []
        for i, p in enumerate(PANELS):
            label = f"{i + 1} {p}"
            if p == "faults" and self.model.faults:
                label += f" ({len(self.model.faults)})"
            out.append(f"[reverse] {label} [/]" if p == self.panel else f" {label} ")
        return "".join(out)

    # -- worker messages -------------------------------------------------------------------

    def on_status_polled(self, m: StatusPolled) -> None:
        fresh = not self.model.has_status
        try:
            new_lab = self.model.apply_status(m.doc, m.t)
        except MALFORMED:
            self.model.malformed += 1  # a document we cannot read: keep the last picture
            return
        self.model.apply_usage(m.usage)
        self.model.apply_history(m.history)
        if new_lab or self._feed_lost:
            self._feed_lost = False
            self.start_feed()  # a new lab in the lab dir: subscribe to its telemetry
        if fresh or new_lab:
            self._probe_lab()
            self._apply_layout()  # the node count decides compact or wide
        self.refresh_panels()

    def on_lab_unreachable(self, m: LabUnreachable) -> None:
        self.model.set_unreachable(m.reason)
        self.refresh_panels()

    def on_telemetry_batch(self, m: TelemetryBatch) -> None:
        model = self.model
        model.advance(m.t)
        poke = False
        violations: list[str] = []
        # Telemetry comes from other processes: a record with a mistyped field is dropped
        # and counted, never allowed to take the dashboard down.
        for e in m.events:
            try:
                model.apply_event(e)
            except MALFORMED:
                model.malformed += 1
                continue
            if e.get("kind") in ("fault", "fault.healed", "process.exit", "node.ready"):
                poke = True  # the fault list and process states live in `status`
            if e.get("kind") == "violation":
                violations.append(model.events[-1].text)
        for node, s in m.statuses.items():
            try:
                model.apply_node_status(node, s)
            except MALFORMED:
                model.malformed += 1
        try:
            if m.links is not None:
                model.apply_links(m.links, float(m.links.get("t", m.t)))
            model.apply_history(m.history)
        except MALFORMED:
            model.malformed += 1
        model.received += m.received
        if poke:
            self.poll_now()
        self._toast_violations(violations)

    def _toast_violations(self, texts: list[str]) -> None:
        """One toast for a burst: 9 self-promoting replicas are 8 violations in a second,
        and eight toasts would hide the panels that show them (events, title)."""
        now = time.monotonic()
        if not texts or not self.model.has_status or now - self._last_toast < VIOLATION_TOAST:
            return
        self._last_toast = now
        more = f" (+{len(texts) - 1} more in events)" if len(texts) > 1 else ""
        self.notify(texts[-1] + more, severity="error", timeout=VIOLATION_TOAST)

    def on_action_done(self, m: ActionDone) -> None:
        if m.title in (ACTIONS["swap"].title, ACTIONS["scenario"].title):
            self.model.notice = None
        if m.title == ACTIONS["scenario"].title:
            self._scenario = None
        if m.error is not None:
            self.notify(m.error, title=f"{m.title} failed", severity="error", timeout=8)
        else:
            self.notify(m.detail or "done", title=m.title, severity=m.severity)  # type: ignore[arg-type]
        self.refresh_panels()

    def on_lab_swapped(self, m: LabSwapped) -> None:
        self._verdict = None
        self.model.reset()
        self.model.notice = None
        self._feed_lost = True  # the next status (the new lab's) restarts the feed
        note = f"; {m.note}" if m.note else ""
        self.notify(f"{m.old_run_dir} ended; {m.protocol} runs in {m.new_run_dir}{note}",
                    title="Protocol swapped", timeout=8)  # fmt: skip
        for warning in m.warnings:
            self.notify(warning, title=f"{m.protocol} size", severity="warning", timeout=15)
        self.poll_now()
        self.refresh_panels(force=True)

    def on_scenario_attached(self, m: ScenarioAttached) -> None:
        self._scenario = m.name
        self._verdict = None
        self.model.reset()
        self.model.notice = None
        self._feed_lost = True  # the next status (the scenario lab's) restarts the feed
        self.notify(f"{m.name} with {m.protocol} runs in {m.lab_dir}", title="Scenario started")
        self.poll_now()
        self.refresh_panels(force=True)

    def on_scenario_done(self, m: ScenarioDone) -> None:
        s = m.summary
        self._scenario = None
        self.model.notice = None
        counts: dict[str, int] = {}
        for v in s.get("violations") or []:
            counts[str(v.get("kind"))] = counts.get(str(v.get("kind")), 0) + 1
        found = ", ".join(f"{k} x{n}" for k, n in sorted(counts.items())) or "none"
        ops = s.get("ops") or {}
        verdict = str(s.get("verdict", "?"))
        text = (
            f"verdict {verdict.upper()} · violations: {found} · ops ok {ops.get('ok', 0)} "
            f"fail {ops.get('fail', 0)} info {ops.get('info', 0)}\nrun: {s.get('run_dir')}"
        )
        if s.get("error"):
            text += f"\nerror: {s['error']}"
        severity = "information" if verdict == "pass" else "warning"
        self.notify(text, title=f"Scenario {s.get('scenario')} ended", severity=severity,
                    timeout=20)  # fmt: skip
        # The toast goes; the verdict stays in the title until the next scenario or swap,
        # and in the events panel of the lab that follows.
        self._verdict = (str(s.get("scenario")), verdict, found)
        if m.restarted:
            self.notify(f"a fresh lab runs in {m.restarted}", title="Lab restarted", timeout=8)
        elif m.error:
            self.notify(m.error, title="fresh lab not started", severity="error", timeout=8)
        else:
            self.notify("no lab here now: start one with `labctl up`", timeout=8)
        self.model.reset()
        name, _, found = self._verdict
        style = "bold green" if verdict == "pass" else "bold red"
        self.model.add_line(self.model.now, f"scenario {name}: verdict {verdict.upper()} "
                            f"(violations: {found}); run {s.get('run_dir')}", style)  # fmt: skip
        self._feed_lost = True
        self.poll_now()
        self.refresh_panels(force=True)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place worker failures land: say so, restart the feeds, keep running."""
        worker = event.worker
        if event.state != WorkerState.ERROR:
            return
        self.notify(f"{worker.name}: {worker.error}", title="dashboard error", severity="error")
        if worker.name == "action":
            self.model.notice = None  # a swap that failed half-way: the title must not lie
            self._scenario = None
        elif worker.name == "telemetry":
            self.set_timer(1.0, self.start_feed)
        elif worker.name == "status":
            self.set_timer(1.0, self.start_poller)

    # -- actions ---------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Keys that reach the app from inside a dialog must not open another one.
        return not (action in _MAIN_ONLY and len(self.screen_stack) > 1)

    def action_act(self, name: str) -> None:
        action = ACTIONS[name]
        if self._scenario is not None and action.kind in ("swap", "scenario"):
            self.notify(f"scenario {self._scenario} is playing: wait for its verdict",
                        severity="warning")  # fmt: skip
            return
        if not self.model.has_status:
            self.notify("no lab to act on yet", severity="warning")
            return
        if not action.fields:
            self.perform(action, {})
            return
        values = actions.defaults(action, self.model, self._protocols)
        options = {f.key: actions.choices(f, self.model, self._protocols) for f in action.fields}
        self.push_screen(
            ActionDialog(action, values, options),
            lambda result: self._dialog_done(action, result),
        )

    def _dialog_done(self, action: Action, values: dict[str, Any] | None) -> None:
        if values is not None:
            self.perform(action, values)

    def perform(self, action: Action, values: dict[str, Any]) -> Worker[None]:
        """Run an action in a thread; its outcome arrives as ActionDone or LabSwapped."""
        if action.kind == "swap":
            self.model.notice = f"ending this run, starting {values['protocol']}…"
            self._update_titles()
        if action.kind == "scenario":
            self._scenario = values["scenario"]
            self.model.notice = (f"ending this run, starting scenario {values['scenario']} "
                                 f"({values['protocol']})…")  # fmt: skip
            self._update_titles()
        return self._perform(action, values)

    @work(thread=True, group="actions", exit_on_error=False, name="action")
    def _perform(self, action: Action, values: dict[str, Any]) -> None:
        self.post_message(actions.perform(action, values, self.source, self.post_message))
        self.poll_now()

    @work(thread=True, group="probe", exit_on_error=False, name="probe")
    def _probe_lab(self) -> None:
        """What the quit prompt and the swap dialog need to know, read off the UI thread."""
        self._protocols = self.source.protocols()
        self._dies_with_us = self.source.dies_with_us()

    def action_report(self) -> None:
        """Write the current run's report.html (labctl report) without blocking the UI."""
        if not self.model.run_dir:
            self.notify("no run to report on yet", severity="warning")
            return
        self.notify("writing the report…", timeout=2)
        self._write_report(self.model.run_dir)

    @work(thread=True, group="report", exclusive=True, exit_on_error=False, name="report")
    def _write_report(self, run_dir: str) -> None:
        from labctl import report

        try:
            page = report.write_report(run_dir)
        except Exception as e:  # a picture that fails must never take the dashboard down
            self.call_from_thread(
                self.notify,
                f"{type(e).__name__}: {e}",
                title="report not written",
                severity="error",
                timeout=8,
            )
            return
        self.call_from_thread(self.notify, str(page), title="report written", timeout=10)

    def action_panel(self, name: str) -> None:
        self.panel = name
        self._apply_layout()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_request_quit(self) -> None:
        if not self.ask_stop_on_quit or not self.model.has_status or self.model.unreachable:
            self.exit(None)
            return
        self.push_screen(QuitScreen(can_leave=not self._dies_with_us), self._quit_answer)

    def action_interrupt(self) -> None:
        """Ctrl-C works from anywhere: close dialogs, then quit as `q` does."""
        if isinstance(self.screen, QuitScreen):
            return
        while len(self.screen_stack) > 1:
            self.pop_screen()
        self.action_request_quit()

    def _quit_answer(self, answer: str | None) -> None:
        if answer is not None:
            self.exit(answer)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for a in ACTIONS.values():
            yield SystemCommand(f"{a.title} ({a.key})", a.help, lambda n=a.name: self.action_act(n))
        for i, p in enumerate(PANELS):
            yield SystemCommand(f"Show {p} ({i + 1})", f"Show the {p} panel in the compact layout",
                                lambda p=p: self.action_panel(p))  # fmt: skip


def make_app(
    lab_dir: str | Path | None = None,
    *,
    source: Source | None = None,
    stop_on_quit_prompt: bool = False,
) -> LabApp:
    """The dashboard on the lab in `lab_dir`, or on any `Source` (a FakeSource in tests).

    A source may set `poll_interval` (a fake polls once: its story carries the rest)."""
    src = source if source is not None else LiveSource(lab_dir)
    interval = getattr(src, "poll_interval", POLL_INTERVAL)
    return LabApp(src, stop_on_quit_prompt=stop_on_quit_prompt, poll_interval=interval)


def run_dashboard(lab_dir: str | Path | None, stop_on_quit_prompt: bool) -> None:
    """Run the dashboard in this terminal until the user quits.

    With `stop_on_quit_prompt` (`labctl up` in the foreground), quitting asks whether to stop
    the lab too; the lab is then stopped here, after the terminal is restored, so the run
    record's path is printed where the user can read it."""
    from labctl.errors import LabError

    app = make_app(lab_dir, stop_on_quit_prompt=stop_on_quit_prompt)
    answer = app.run()
    if answer == STOP or (answer == LEAVE and app._dies_with_us):
        try:
            done = app.source.down()
        except LabError as e:
            sys.stderr.write(f"lab not stopped: {e}\n")
            return
        sys.stderr.write(f"lab down; run record in {done.get('run_dir')}\n")
        return
    where = Path(app.source.lab_dir)
    try:
        from labctl import labdir

        running = labdir.read_state(where) is not None
    except OSError:
        running = False
    if running:  # quitting left it running (or it was attached): say where, and how to stop
        flag = "" if where == labdir.resolve(None) else f" --lab-dir {where}"
        sys.stderr.write(f"the lab still runs in {where}: `labctl dash{flag}` watches it, "
                         f"`labctl down{flag}` stops it\n")  # fmt: skip
