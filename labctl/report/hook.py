"""What a finished run does about its report: write it and say where, or say how to get it.

`scenario run`, `chaos` (for runs that broke something or failed) and `selftest` (for
each real replay) call `after_run` once the verdict is known. The
report is on by default because people would rather look than read: the first run a new
user makes should end with a page to open, not with a command to learn. It costs a second
or two after a run of ten or more; `--no-report` skips it. A report that cannot be
written never changes a run's verdict or exit code.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def after_run(run_dir: str | Path | None, enabled: bool = True) -> Path | None:
    """Write RUN/report.html and print its path on stderr; None when skipped or failed."""
    if not enabled or not run_dir or not Path(run_dir, "events.jsonl").exists():
        return None
    from labctl import report

    if not report.available():
        _say(f"report: not written, matplotlib is missing ({report.INSTALL_HINT})")
        return None
    try:
        path = report.write_report(run_dir)
    except Exception as e:  # a broken picture must not turn a verdict into a crash
        _say(f"report: not written: {type(e).__name__}: {e}")
        return None
    _say(f"report: {path}")
    return path
