"""The benchmark of the session engines against their peers: ``python -m bench``.

See docs/benchmark.md for what it measures and how.
"""
