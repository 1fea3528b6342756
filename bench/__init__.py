"""Ringmaster's benchmark harness (issue 5): `python -m bench [--quick]`.

Not part of the test suite. See docs/performance.md for what each figure means.
"""
