"""The benchmark of the session engines against their peers: ``python -m bench``.

See ``docs/bench.md`` for what it measures and how.
"""
