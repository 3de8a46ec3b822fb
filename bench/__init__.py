"""The benchmark of the session engines against their peers: ``python -m bench``.

See the README's "Benchmark" section for what it measures and how.
"""
