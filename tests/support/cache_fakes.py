"""Stand-ins for the cache engine's unit tests: a counting repository and an engine on fakeredis."""

from __future__ import annotations

import threading

import fakeredis

from cachewarm.cache import CacheAside
from cachewarm.model import Summary
from cachewarm.settings import Settings


class FakeRepo:
    """Counts reads; can block a read until released, to stage races deterministically."""

    def __init__(self, data=None):
        self.data = dict(data or {})
        self.reads = 0
        self.gate: threading.Event | None = None
        self.entered = threading.Event()

    def get_summary(self, name):
        self.reads += 1
        snapshot = self.data.get(name)
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(5)
        return snapshot


def summary(name, version=0, text="first"):
    return Summary({"name": name, "version": version}, [{"id": "1", "review": text}])


def make(fake_server, repo, **overrides):
    settings = Settings(**overrides)
    return CacheAside(fakeredis.FakeRedis(server=fake_server), repo, settings)
