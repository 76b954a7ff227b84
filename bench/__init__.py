"""Benchmarks: each module has a command, prints its figures and writes bench/results/<name>.json.

Speed is measured here, never asserted by tests. `python -m bench.run` runs them all.
"""
