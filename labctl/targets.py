"""Moved to faults/targets.py (the simulator resolves roles too); kept for old imports."""

from faults.targets import current_leader, resolve

__all__ = ["current_leader", "resolve"]
