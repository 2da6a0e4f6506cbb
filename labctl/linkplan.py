"""Moved to faults/linkplan.py (the simulator folds link faults too); kept for old imports."""

from faults.linkplan import directed_links, link_table

__all__ = ["directed_links", "link_table"]
