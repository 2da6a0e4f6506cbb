"""Fault model: link rules, the fault router process, partition shapes."""
