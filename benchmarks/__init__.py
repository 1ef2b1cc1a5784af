"""Engineering benchmarks: each figure is measured side by side with its baseline, in one run.

Run them all with ``make bench`` (``python -m benchmarks``); the report goes to
``reports/benchmarks.json`` and the README's table. These are measurements,
not tests: nothing here asserts a timing.
"""
