"""Bulk loading: streaming JSON-lines reader and validator, parallel batch writers, checkpoints, generator.

Public API::

    from loaders import load_file
    report = load_file("items.jsonl", settings=settings)   # -> LoadReport (.written, .rejected, .ok)

    from loaders import generate_file
    lines = generate_file("items.jsonl", restaurants=1000, reviews_per_restaurant=20, seed=7)

Modules: ``pipeline`` (the entry points ``load_file``/``load_range``),
``block_writer`` (one block: validate, dedupe, write, invalidate), ``processes``
(writer processes), ``reader``, ``validate``, ``writer`` (BatchWriteItem and its
retries), ``invalidate``, ``checkpoint``, ``report``, ``progress``, ``defaults``,
``generate``.

Importing this package connects to nothing and imports neither boto3 nor redis.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_THREADS", "DEFAULT_WORKERS", "LoadReport", "Progress", "Reject", "generate_file", "load_file",
           "load_range"]

# Lazy, so `import loaders` (and the CLI's --help) stays fast: name -> the module that defines it.
_HOMES = {
    "load_file": "loaders.pipeline",
    "load_range": "loaders.pipeline",
    "Progress": "loaders.progress",
    "LoadReport": "loaders.report",
    "Reject": "loaders.validate",
    "generate_file": "loaders.generate",
    "DEFAULT_WORKERS": "loaders.defaults",
    "DEFAULT_THREADS": "loaders.defaults",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'loaders' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(home), name)
