"""The embedded stack's dynalite survives clients that vanish mid-request."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from devstack.localstack import start_dynalite

pytestmark = pytest.mark.integration


def test_dynalite_survives_a_client_killed_mid_request(tmp_path):
    # Plain dynalite rethrows the request's "aborted"/ECONNRESET and exits: one SIGKILLed
    # loader would take the whole local table down. devstack/dynalite-server.js keeps it up.
    server = start_dynalite(tmp_path, persist=False)
    try:
        port = int(server.url.rsplit(":", 1)[1])
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.0\r\n"
                     b"X-Amz-Target: DynamoDB_20120810.ListTables\r\nContent-Length: 1000\r\n\r\n{\"a\":")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
        sock.close()
        deadline = time.monotonic() + 5
        while "went away" not in server.log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "went away" in server.log_path.read_text()
        assert server.process.poll() is None
        import boto3

        client = boto3.client("dynamodb", endpoint_url=server.url, region_name="us-east-1",
                              aws_access_key_id="local", aws_secret_access_key="local")
        assert client.list_tables()["TableNames"] == []
    finally:
        server.stop()
