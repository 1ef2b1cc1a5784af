"""A local Redis Cluster of three primaries: what ElastiCache calls cluster mode, on loopback.

Each node is a private redis-server started with ``--cluster-enabled yes``; the
cluster is formed with ``redis-cli --cluster create`` (Debian's redis-tools,
installed with redis-server) and is ready when every node reports
``cluster_state:ok``. A node's cluster bus listens on its port + 10000, so the
ports are picked below 55535 with that bus port free too.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from devstack.localstack import Service, StackError, start_redis

#: Redis Cluster's bus port offset (fixed by the protocol).
BUS_OFFSET = 10_000
#: Highest client port whose bus port is still a valid port.
MAX_PORT = 65_535 - BUS_OFFSET


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_ports(count: int, *, low: int = 20_000, high: int = MAX_PORT) -> list[int]:
    """``count`` client ports in ``[low, high)`` whose bus ports (+10000) are free as well."""
    import random

    chosen: list[int] = []
    candidates = list(range(low, high))
    random.shuffle(candidates)
    for port in candidates:
        if port in chosen or port + BUS_OFFSET in chosen:
            continue
        if _bindable(port) and _bindable(port + BUS_OFFSET):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise StackError(f"no {count} free port pairs (port, port + {BUS_OFFSET}) below {high}")


@dataclass
class LocalCluster:
    """Three (or more) primaries on loopback; ``url`` names one of them, as CACHE_REDIS_URL would."""

    workdir: Path
    primaries: int = 3
    node_timeout_ms: int = 2000
    ports: list[int] = field(default_factory=list)
    nodes: list[Service] = field(default_factory=list)

    @property
    def url(self) -> str:
        """A ``redis://`` URL of the first node (any node would do: the client discovers the rest)."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self, timeout: float = 30.0) -> LocalCluster:
        """Start the nodes, form the cluster, wait until every slot is served."""
        cli = shutil.which("redis-cli")
        if cli is None:
            raise StackError("redis-cli is missing (Debian's redis-tools, installed with redis-server)")
        self.ports = cluster_ports(self.primaries)
        for port in self.ports:
            self.nodes.append(start_redis(
                self.workdir / f"node-{port}", port=port, name=f"cluster-{port}",
                # Full coverage off, as the CDK app's parameter group sets it: a shard that is lost
                # leaves the others serving their slots instead of failing the whole cluster.
                extra_args=["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                            "--cluster-node-timeout", str(self.node_timeout_ms),
                            "--cluster-require-full-coverage", "no"],
            ))
        created = subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports), "--cluster-replicas", "0",
             "--cluster-yes"], capture_output=True, text=True, timeout=timeout, check=False,
        )
        if created.returncode != 0:
            self.stop()
            raise StackError(f"redis-cli --cluster create failed: {created.stdout[-2000:]} {created.stderr[-2000:]}")
        self.wait_ok(timeout)
        return self

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Block until every running node says ``cluster_state:ok``."""
        import redis

        deadline = time.monotonic() + timeout
        while True:
            states = []
            for port, node in zip(self.ports, self.nodes, strict=True):
                if node.process.poll() is not None:
                    continue
                try:
                    info = redis.Redis(port=port, socket_timeout=1).cluster("info")
                    states.append(str(info.get("cluster_state", "")) if isinstance(info, dict) else str(info))
                except redis.RedisError as exc:
                    states.append(str(exc))
            if states and all("ok" in state for state in states):
                return
            if time.monotonic() > deadline:
                raise StackError(f"cluster not ready after {timeout}s: {states}")
            time.sleep(0.1)

    def node_of(self, key: str) -> int:
        """The index (into ``ports``/``nodes``) of the primary serving ``key``'s slot."""
        import redis

        client = redis.Redis(port=self.ports[0], socket_timeout=2)
        slot = int(client.cluster("keyslot", key))
        for entry in client.cluster("slots"):
            start, end, primary = int(entry[0]), int(entry[1]), entry[2]
            if start <= slot <= end:
                return self.ports.index(int(primary[1]))
        raise StackError(f"no node serves slot {slot}")

    def stop(self) -> None:
        """Stop every node."""
        for node in self.nodes:
            node.stop()
