"""The dev stack's dynalite launcher (devstack/dynalite-server.js, architect/dynalite#183).

It must keep dynalite up when a client vanishes mid-request, let every other
request error end the process as plain dynalite does, and refuse to run when
the patched surface (the dynalite version, its request 'error' listener) changed.
"""

from __future__ import annotations

import json
import shutil
import socket
import struct
import subprocess
import textwrap

import boto3
import pytest

from devstack.localstack import PROJECT_ROOT, start_dynalite
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

LAUNCHER = PROJECT_ROOT / "devstack" / "dynalite-server.js"


def _node(script: str, cwd=PROJECT_ROOT) -> subprocess.CompletedProcess:
    node = shutil.which("node")
    assert node, "node is needed for the dev stack (make setup)"
    return subprocess.run([node, "-e", script], cwd=cwd, capture_output=True, text=True, timeout=30)


def _send_half_a_request_then_reset(port: int) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.0\r\n"
                 b"X-Amz-Target: DynamoDB_20120810.ListTables\r\nContent-Length: 1000\r\n\r\n{\"a\":")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
    sock.close()


def test_dynalite_survives_a_client_killed_mid_request(tmp_path):
    # Plain dynalite rethrows the request's "aborted"/ECONNRESET and exits: one SIGKILLed
    # loader would take the whole local table down.
    server = start_dynalite(tmp_path, persist=False)
    try:
        _send_half_a_request_then_reset(int(server.url.rsplit(":", 1)[1]))
        wait_until(lambda: "went away" in server.log_path.read_text(), 5, "the launcher logging the reset")
        assert server.process.poll() is None
        client = boto3.client("dynamodb", endpoint_url=server.url, region_name="us-east-1",
                              aws_access_key_id="local", aws_secret_access_key="local")
        assert client.list_tables()["TableNames"] == []
    finally:
        server.stop()


# A stand-in for dynalite's server: one request handler that rethrows request errors, as index.js does.
_FAKE_SERVER = """
const { EventEmitter } = require('events')
const { surviveAbortedRequests } = require(%s)
const server = new EventEmitter()
server.on('request', (req) => req.on('error', (err) => { throw err }))
surviveAbortedRequests(server)
const req = new EventEmitter()
server.emit('request', req, {})
"""


def test_only_the_request_aborted_error_is_swallowed():
    script = _FAKE_SERVER % json.dumps(str(LAUNCHER)) + textwrap.dedent("""
        const aborted = Object.assign(new Error('aborted'), { code: 'ECONNRESET' })
        req.emit('error', aborted)
        const other = [Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }),
                       Object.assign(new Error('aborted'), { code: 'EPIPE' }), new Error('boom')]
        for (const err of other) {
          try { req.emit('error', err); console.log('swallowed ' + err.message) }
          catch (thrown) { console.log('rethrown ' + thrown.message + ' ' + (thrown.code || '')) }
        }
    """)
    done = _node(script)
    assert done.returncode == 0, done.stderr
    assert "went away mid-request (ECONNRESET aborted)" in done.stderr
    assert done.stdout.split("\n")[:3] == ["rethrown read ECONNRESET ECONNRESET", "rethrown aborted EPIPE",
                                          "rethrown boom "]


def test_a_dynalite_without_the_rethrowing_listener_stops_the_launcher():
    script = textwrap.dedent(f"""
        const {{ EventEmitter }} = require('events')
        const {{ surviveAbortedRequests }} = require({json.dumps(str(LAUNCHER))})
        const server = new EventEmitter()
        server.on('request', () => {{}})  // a fixed dynalite: nothing to work around
        surviveAbortedRequests(server)
        server.emit('request', new EventEmitter(), {{}})
    """)
    done = _node(script)
    assert done.returncode == 3
    assert "no longer adds a request error listener" in done.stderr


def test_another_dynalite_version_is_refused(tmp_path):
    fake = tmp_path / "node_modules" / "dynalite"
    fake.mkdir(parents=True)
    (fake / "package.json").write_text(json.dumps({"name": "dynalite", "version": "4.1.0"}))
    (fake / "index.js").write_text("module.exports = () => { throw new Error('must not be reached') }")
    shutil.copy(LAUNCHER, tmp_path / "dynalite-server.js")
    done = subprocess.run([shutil.which("node") or "node", "dynalite-server.js", "--port", "0"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 3
    assert "written against dynalite 4.0.0" in done.stderr and "found 4.1.0" in done.stderr


def test_the_checked_version_is_the_locked_one():
    # The launcher's guard and package-lock.json name the same dynalite, so `make setup` installs
    # a version the launcher runs with.
    lock = json.loads((PROJECT_ROOT / "package-lock.json").read_text())
    installed = json.loads((PROJECT_ROOT / "node_modules" / "dynalite" / "package.json").read_text())
    assert f"const CHECKED_VERSION = '{lock['packages']['node_modules/dynalite']['version']}'" in LAUNCHER.read_text()
    assert installed["version"] == lock["packages"]["node_modules/dynalite"]["version"]
