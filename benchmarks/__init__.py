"""batchtoon's benchmarks: `python -m benchmarks` (or `make bench`); see benchmarks/README.md.

Not part of the test suite. Every benchmark runs the client and the sandbox as separate
processes on loopback, with generated inputs in temporary folders that are removed afterwards.
"""
