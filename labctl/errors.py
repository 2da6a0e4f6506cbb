"""The lab's errors and the one table of exit codes every command uses.

0 success (or expectations met), 1 expectations not met, 2 bad input or usage
(unknown node, malformed duration, no running lab...), 3 the lab itself failed.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_NOT_MET = 1
EXIT_USAGE = 2
EXIT_LAB_FAILED = 3


class LabError(Exception):
    """An error a user sees as one line on stderr, with an exit code."""

    code = EXIT_USAGE

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class NoLab(LabError):
    """No lab is running in the lab directory."""


class LabFailed(LabError):
    code = EXIT_LAB_FAILED
