"""Wall time of `labctl` calls (median of 10 each); the same as `labctl bench cli`.

    python bench/cli_latency.py [--runs 10] [--json]
"""

from labctl.benchmarks.cli_latency import main

if __name__ == "__main__":
    main()
