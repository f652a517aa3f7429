"""Side-by-side timings of convcli against its anchors; not part of the test suite.

Run ``python -m benchmarks --help``. See ``benchmarks/README.md``.
"""
