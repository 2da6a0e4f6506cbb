"""The `labctl` command line: a module per command group, one exit path (main.py)."""
