"""A small fault-injecting HTTP proxy in front of dynalite.

dynalite never throttles and botocore's Stubber bypasses retries, so tests that
need a slow, counted, throttling or partially failing DynamoDB put this proxy
between the code and dynalite. It counts requests per operation, can delay
responses, hold a response until released (to stage races), and answer with
throttling errors or trimmed ``UnprocessedItems`` a given number of times, or
follow a script of such answers request by request (``Faults.script``). With
``Faults.lagging_index`` it plays an eventually consistent index: a Query is
answered with what the same Query returned before the lag began (dynalite's
index is synchronous, AWS's GSIs are not). It also tracks the requests in
flight per operation, the most at once (``peak_in_flight``, ``take_peak``) and
the time they spent (``busy_seconds``): what a cap on concurrent reads is judged by.
"""

from __future__ import annotations

import collections
import http.client
import json
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class Faults:
    """What the proxy does to each operation (``Query``, ``BatchWriteItem``, ...)."""

    delay: dict[str, float] = field(default_factory=dict)
    # operation -> Event; the upstream response is held until the event is set
    hold: dict[str, threading.Event] = field(default_factory=dict)
    # operation -> [error code, remaining count]
    errors: dict[str, list] = field(default_factory=dict)
    # BatchWriteItem: this many responses return all but one item as unprocessed
    unprocessed: int = 0
    # operation -> actions taken by its next requests, in order (before ``errors``):
    # an error code such as "ThrottlingException", "unprocessed" (as above), or "pass"
    script: dict[str, list[str]] = field(default_factory=dict)
    # While True, a Query that was answered before is answered again with that earlier
    # (pre-write) response: a global secondary index that has not caught up yet.
    lagging_index: bool = False


class DynamoProxy:
    """Run with ``with DynamoProxy(upstream) as proxy: proxy.url``.

    ``nodelay=True`` answers without Nagle's algorithm. The handler writes the
    headers and the body of a response separately, so with Nagle the body waits
    for the client's delayed ACK of the headers: about 40 ms on every response,
    more than a benchmark's injected delay. Off by default: the tests that use
    the proxy were written (and their timings checked) with it as it was.
    """

    def __init__(self, upstream: str, *, nodelay: bool = False):
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname, parts.port
        self.faults = Faults()
        self.counts: collections.Counter[str] = collections.Counter()
        self.log: list[tuple[float, str, int]] = []  # (time, operation, status)
        self.arrivals: list[tuple[float, str, str]] = []  # (time a request arrived, operation, action)
        self.lock = threading.Lock()
        self.entered: dict[str, threading.Event] = collections.defaultdict(threading.Event)
        # Query request body -> the last answer it got while the index was not lagging.
        self.query_snapshots: dict[bytes, tuple[int, list, bytes]] = {}
        self.lagged_queries = 0
        # operation -> requests arrived and not answered yet (delay and hold included), and the most at once:
        # the concurrency DynamoDB would see, which counts alone cannot show.
        self.in_flight: collections.Counter[str] = collections.Counter()
        self.peak_in_flight: collections.Counter[str] = collections.Counter()
        self._window_peak: collections.Counter[str] = collections.Counter()
        # operation -> seconds its requests spent in the proxy, summed (with counts: the mean latency)
        self.busy_seconds: collections.defaultdict[str, float] = collections.defaultdict(float)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = nodelay  # StreamRequestHandler sets TCP_NODELAY on the connection

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
                status, headers, payload = proxy._handle(operation, dict(self.headers), body)
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in ("content-length", "transfer-encoding", "connection", "x-amz-crc32"):
                        self.send_header(name, value)
                # botocore checks DynamoDB's CRC32 of the body: recompute it for the (maybe rewritten) payload,
                # or a trimmed answer would look corrupt and be retried instead of handled as UnprocessedItems.
                self.send_header("x-amz-crc32", str(zlib.crc32(payload) & 0xFFFFFFFF))
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                import sys

                # A client that was killed mid-request (fault injection) is not an error of the proxy.
                if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> DynamoProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        for event in self.faults.hold.values():
            event.set()
        self.server.shutdown()
        self.server.server_close()

    def _error(self, code: str) -> tuple[int, list, bytes]:
        payload = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "injected"})
        return 400, [("Content-Type", "application/x-amz-json-1.0")], payload.encode()

    def take_peak(self, operation: str) -> int:
        """The most ``operation`` requests in flight at once since the last call (a sampler's window)."""
        with self.lock:
            peak = self._window_peak[operation]
            # The next window starts with what is in flight now, not at zero.
            self._window_peak[operation] = self.in_flight[operation]
            return peak

    def _handle(self, operation: str, headers: dict, body: bytes) -> tuple[int, list, bytes]:
        with self.lock:
            self.in_flight[operation] += 1
            count = self.in_flight[operation]
            self.peak_in_flight[operation] = max(self.peak_in_flight[operation], count)
            self._window_peak[operation] = max(self._window_peak[operation], count)
        began = time.monotonic()
        try:
            return self._answer(operation, headers, body)
        finally:
            with self.lock:
                self.in_flight[operation] -= 1
                self.busy_seconds[operation] += time.monotonic() - began

    def _answer(self, operation: str, headers: dict, body: bytes) -> tuple[int, list, bytes]:
        with self.lock:
            self.counts[operation] += 1
            scripted = self.faults.script.get(operation)
            action = scripted.pop(0) if scripted else None
            self.arrivals.append((time.monotonic(), operation, action or "pass"))
            if action not in (None, "pass", "unprocessed"):
                self.log.append((time.monotonic(), operation, 400))
                return self._error(action)
            injected = self.faults.errors.get(operation)
            if action is None and injected and injected[1] > 0:
                injected[1] -= 1
                self.log.append((time.monotonic(), operation, 400))
                return self._error(injected[0])
            trim = operation == "BatchWriteItem" and (action == "unprocessed" or (
                action is None and self.faults.unprocessed > 0))
            if trim and action is None:
                self.faults.unprocessed -= 1
            snapshot = self.query_snapshots.get(body) if operation == "Query" else None
            if snapshot is not None and self.faults.lagging_index:
                self.lagged_queries += 1
                self.log.append((time.monotonic(), operation, snapshot[0]))
                return snapshot
        if trim:
            # Write only the first item of each table; hand the rest back as unprocessed.
            request = json.loads(body)
            unprocessed = {}
            for table, writes in request["RequestItems"].items():
                request["RequestItems"][table] = writes[:1]
                if writes[1:]:
                    unprocessed[table] = writes[1:]
            body = json.dumps(request).encode()
        status, response_headers, payload = self._forward(headers, body)
        if trim and status == 200:
            answer = json.loads(payload)
            answer["UnprocessedItems"] = unprocessed
            payload = json.dumps(answer).encode()
        if operation == "Query" and status == 200:
            with self.lock:
                if not self.faults.lagging_index:
                    self.query_snapshots[body] = (status, response_headers, payload)
        self.entered[operation].set()
        if operation in self.faults.delay:
            time.sleep(self.faults.delay[operation])
        if operation in self.faults.hold:
            self.faults.hold[operation].wait(30)
        with self.lock:
            self.log.append((time.monotonic(), operation, status))
        return status, response_headers, payload

    def _forward(self, headers: dict, body: bytes) -> tuple[int, list, bytes]:
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=30)
        try:
            forwarded = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection", "content-length")}
            conn.request("POST", "/", body=body, headers=forwarded)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()
