"""A small fault-injecting HTTP proxy in front of dynalite.

dynalite never throttles and botocore's Stubber bypasses retries, so tests that
need a slow, counted, throttling or partially failing DynamoDB put this proxy
between the code and dynalite. It counts requests per operation, can delay
responses, hold a response until released (to stage races), and answer with
throttling errors or trimmed ``UnprocessedItems`` a given number of times, or
follow a script of such answers request by request (``Faults.script``). With
``Faults.lagging_index`` it plays an eventually consistent index: a Query is
answered with what the same Query returned before the lag began (dynalite's
index is synchronous, AWS's GSIs are not).
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
    """Run with ``with DynamoProxy(upstream) as proxy: proxy.url``."""

    def __init__(self, upstream: str):
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
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

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

    def _handle(self, operation: str, headers: dict, body: bytes) -> tuple[int, list, bytes]:
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
