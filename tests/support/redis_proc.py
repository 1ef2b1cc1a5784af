"""A private redis-server that tests can kill, hang and bring back on the same port."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from devstack.localstack import Service, free_port, start_redis


@dataclass
class RedisProc:
    """A private redis-server that keeps its port and directory across restarts."""

    workdir: Path
    args: list[str]
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    service: Service | None = None
    restarts: int = 0

    @property
    def url(self) -> str:
        """``redis://`` URL of database 0."""
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> RedisProc:
        """Start (or start again) on this port and directory."""
        self.service = start_redis(self.workdir, port=self.port, extra_args=self.args,
                                   name=f"redis-{self.restarts}")
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown save, no goodbye to clients."""
        assert self.service is not None
        self.service.kill()

    def restart(self) -> float:
        """Start again on the same port and directory; return seconds until it accepted connections."""
        self.restarts += 1
        t0 = time.monotonic()
        self.start()
        return time.monotonic() - t0

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections, nothing answers (a hung server)."""
        assert self.service is not None
        os.kill(self.service.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        assert self.service is not None
        os.kill(self.service.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Resume if paused, then stop for good."""
        if self.service is not None:
            with contextlib.suppress(ProcessLookupError):
                self.resume()
            self.service.stop()

    def client(self, db: int = 0):
        """A redis-py client for database ``db``."""
        import redis

        return redis.Redis(host=self.host, port=self.port, db=db, socket_timeout=10)
