"""Bulk loading: streaming JSON-lines reader and validator, parallel batch writers, checkpoints, generator.

Public API::

    from loaders import load_file
    report = load_file("items.jsonl", settings=settings)   # -> LoadReport (.written, .rejected, .ok)

    from loaders.generate import generate_file
    lines = generate_file("items.jsonl", restaurants=1000, reviews_per_restaurant=20, seed=7)

Importing this package connects to nothing and imports neither boto3 nor redis.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LoadReport", "Progress", "Reject", "generate_file", "load_file", "load_range"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import loaders` (and the CLI) stays fast.
    if name in ("load_file", "load_range", "Progress"):
        from loaders import pipeline

        return getattr(pipeline, name)
    if name == "LoadReport":
        from loaders.report import LoadReport

        return LoadReport
    if name == "Reject":
        from loaders.validate import Reject

        return Reject
    if name == "generate_file":
        from loaders.generate import generate_file

        return generate_file
    raise AttributeError(name)
