"""Benchmarks behind `labctl bench`: each module measures one part and returns a dict."""
