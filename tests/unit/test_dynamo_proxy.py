"""devstack.dynamo_proxy: requests in flight per operation, in front of a stub upstream (no dynalite needed)."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from devstack.dynamo_proxy import DynamoProxy


class _Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        payload = b'{"Items": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def proxy() -> Iterator[DynamoProxy]:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    upstream.daemon_threads = True
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    try:
        with DynamoProxy(f"http://127.0.0.1:{upstream.server_address[1]}") as running:
            yield running
    finally:
        upstream.shutdown()
        upstream.server_close()


def _call(url: str, operation: str) -> int:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("POST", "/", body=b"{}", headers={"X-Amz-Target": f"DynamoDB_20120810.{operation}"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_requests_held_at_once_are_counted_in_flight_per_operation(proxy):
    release = proxy.faults.hold["Query"] = threading.Event()
    callers = [threading.Thread(target=_call, args=(proxy.url, "Query")) for _ in range(5)]
    for caller in callers:
        caller.start()
    for _ in range(200):  # all five held inside the proxy (bounded wait, not a sleep guess)
        if proxy.in_flight["Query"] == 5:
            break
        threading.Event().wait(0.01)
    assert proxy.in_flight["Query"] == 5
    assert _call(proxy.url, "GetItem") == 200  # another operation is counted apart, and not held
    release.set()
    for caller in callers:
        caller.join(10)

    assert proxy.counts["Query"] == 5
    assert proxy.in_flight["Query"] == 0 and proxy.in_flight["GetItem"] == 0
    assert proxy.peak_in_flight["Query"] == 5 and proxy.peak_in_flight["GetItem"] == 1
    assert proxy.take_peak("Query") == 5
    assert proxy.take_peak("Query") == 0  # a new window starts from what is in flight now


def test_a_request_answered_with_an_injected_error_leaves_flight_too(proxy):
    proxy.faults.errors["Query"] = ["ThrottlingException", 1]
    assert _call(proxy.url, "Query") == 400
    assert _call(proxy.url, "Query") == 200
    assert proxy.in_flight["Query"] == 0 and proxy.peak_in_flight["Query"] == 1


def test_time_spent_in_the_proxy_includes_the_injected_delay(proxy):
    proxy.faults.delay["Query"] = 0.05
    for _ in range(3):
        _call(proxy.url, "Query")
    assert 3 * 0.05 <= proxy.busy_seconds["Query"] < 3 * 0.05 + 2.0
