"""Dashboard panels, one widget per file: nodes, links, events, charts, faults."""
