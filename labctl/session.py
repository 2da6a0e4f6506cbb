"""Lab orchestration: one lab dir a user works in, across the labs that run there.

`LabSession` is what replaces a running lab: swap its protocol (end the run, start the
new protocol with the same size, seed and fencing), play a built-in scenario into it (end
the run, play the scenario in its own isolated lab dir, come back and start the user's
lab again), stop it. The dashboard is a client of it (tui/source.py), and so can a script
be; it reaches labs only through `labctl.api`.

A session follows one lab dir at a time (`lab_dir`): the user's (`home`), or a scenario's
while one plays. Everything that reads the lab (`status`) waits while the lab is being
replaced, so a poll never asks a supervisor that is going away.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labctl import api, labdir
from labctl.errors import LabError


def keeps_mutation(name: Any) -> str | None:
    """The mutation a protocol swap keeps: a lab-wide one (broker, workload), not one of
    the old protocol's (the new protocol has none of that name)."""
    from labctl.mutants import lab_wide

    if isinstance(name, str) and any(m.name == name for m in lab_wide()):
        return name
    return None


def swap_note(old: Any, kept: str | None) -> str:
    """What a swap did with the lab's mutation, for the user."""
    if kept:
        return f"mutation {kept} kept"
    if isinstance(old, str) and old:
        return f"mutation {old} cleared (it belongs to the old protocol)"
    return ""


class LabSession:
    """The labs of one lab dir (default .labctl/ or $LABCTL_DIR)."""

    def __init__(self, lab_dir: str | Path | None = None, client_prefix: str = "cli") -> None:
        self.home = labdir.resolve(lab_dir)
        self.lab_dir = self.home  # the lab dir followed now (a scenario's while one plays)
        self.client_prefix = client_prefix  # names this session's client endpoint
        self._lab: api.Lab | None = None
        # Held while the lab is being replaced: a poll then waits for the new lab instead
        # of asking the old supervisor, which would never answer.
        self._replacing = threading.Lock()

    # -- the lab running now ---------------------------------------------------------------

    def lab(self) -> api.Lab:
        """The lab running now; re-read from the lab dir so a new lab there is noticed."""
        lab = api.Lab.find(self.lab_dir)
        if self._lab is None or self._lab.state != lab.state:
            if self._lab is not None:
                self._lab.close()
            lab.client_prefix = self.client_prefix
            self._lab = lab
        return self._lab

    def status(self, timeout: float = 10.0) -> dict[str, Any]:
        with self._replacing:
            answer = self.lab().call("status", timeout=timeout)
        answer.pop("ok", None)
        return answer

    def config(self) -> dict[str, Any]:
        """The running lab's config as its run record has it ({} when unknown)."""
        try:
            run_dir = self.lab().run_dir
            config = json.loads((run_dir / "lab.json").read_text()).get("config", {})
        except (OSError, ValueError, KeyError, AttributeError, LabError):
            return {}
        return config if isinstance(config, dict) else {}

    def dies_with_us(self) -> bool:
        """True when the lab was started in the foreground by this process."""
        return self.config().get("parent_pid") == os.getpid()

    def down(self) -> dict[str, Any]:
        with self._replacing:
            answer = self.lab().down()
            self._lab = None
        return answer

    # -- replacing it ----------------------------------------------------------------------

    def _owner(self, config: dict[str, Any]) -> int | None:
        """The lab that replaces one started in the foreground by this process dies with
        this process too."""
        return os.getpid() if config.get("parent_pid") == os.getpid() else None

    def swap(self, protocol: str) -> dict[str, Any]:
        """End the run and start `protocol` with the same node count, seed and fencing:
        {"old_run_dir", "new_run_dir", "note" (what became of a mutation), "warnings"}.
        Options belong to the old protocol: the new one starts with its defaults. So do
        its mutations: a broker or workload mutation is kept, one of the old protocol's
        is cleared, and the note says which."""
        lab = self.lab()
        doc = lab.status()
        old = self.config()
        kept = keeps_mutation(old.get("mutate"))
        config = api.lab_config(protocol, len(doc["nodes"]), int(doc.get("seed", 42)), {},
                                bool(old.get("fencing")), kept)  # fmt: skip
        with self._replacing:
            answer = lab.down()
            self._lab = None
            new = api.up(self.lab_dir, config, foreground_pid=self._owner(old))
        return {"old_run_dir": answer.get("run_dir", ""), "new_run_dir": new.state["run_dir"],
                "note": swap_note(old.get("mutate"), kept),
                "warnings": api.config_warnings(config)}  # fmt: skip

    def play(
        self,
        name: str,
        protocol: str,
        fresh: bool,
        attached: Callable[[str], Any] = lambda lab_dir: None,
    ) -> dict[str, Any]:
        """End the run, play built-in scenario `name` with `protocol` in its own lab dir
        (the session follows that lab dir meanwhile; `attached(dir)` is called once its lab
        is up), then come back home, starting the user's lab again there when `fresh`
        (protocol, size, seed, options, fencing: a user watching 5 replicas gets 5 back).
        Returns {"summary": the scenario's contract summary, "restarted": the fresh run
        dir or None, "error": why the fresh lab did not start, or None}. Nothing is said
        on the terminal (a dashboard owns it): the summary says it all."""
        from labctl.scenario import runner
        from labctl.scenario.format import ScenarioError
        from labctl.scenario.library import resolve

        try:
            sc = resolve(name, protocol)
        except ScenarioError as e:
            raise LabError(str(e)) from None
        try:
            self.lab()
            mine = self.config()
            running = True
        except LabError:
            mine, running = {}, False  # nothing runs here now: the scenario simply starts
        if running and not mine:
            doc = self.status()
            mine = {"protocol": doc["protocol"], "nodes": len(doc["nodes"]), "seed": doc["seed"]}
        try:
            if running:
                self.down()
            background = runner.InBackground(sc, self.home, runner.Voice(muted=True))
            iso = background.wait_for_lab()
            if iso is not None:
                with self._replacing:
                    self.lab_dir, self._lab = iso, None
                attached(str(iso))
            try:
                _code, summary = background.join()
            except Exception as e:
                raise LabError(f"scenario {name} failed: {e}") from e
        finally:
            with self._replacing:
                self.lab_dir, self._lab = self.home, None
        out: dict[str, Any] = {"summary": summary, "restarted": None, "error": None}
        if fresh:
            config = api.lab_config(
                str(mine.get("protocol", sc.protocol)), int(mine.get("nodes", sc.nodes)),
                int(mine.get("seed", sc.seed)), dict(mine.get("options") or {}),
                bool(mine.get("fencing")),
            )  # fmt: skip
            try:
                with self._replacing:
                    new = api.up(self.home, config, foreground_pid=self._owner(mine))
                    self._lab = new
                out["restarted"] = new.state["run_dir"]
            except LabError as e:
                out["error"] = str(e)
        return out

    def close(self) -> None:
        if self._lab is not None:
            self._lab.close()
