"""``cachewarm exporter``: usage errors (exit 2, one line); serving: tests/integration/test_exporter.py."""

from __future__ import annotations

import socket

import pytest

from cachewarm_cli.exporter import DEFAULT_PORT, parse_port


@pytest.mark.parametrize("port", ["abc", "-1", "65536", "9809.5", ""])
def test_a_bad_port_is_one_line_and_exit_2(run_main, port):
    code, out, err = run_main("exporter", "--port", port)
    assert code == 2
    assert err.startswith("error: --port: expected a TCP port number (0-65535)") and err.count("\n") == 1
    assert out == ""


def test_a_port_in_use_is_one_line_and_exit_2(run_main):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        code, _, err = run_main("exporter", "--port", str(taken.getsockname()[1]))
    assert code == 2
    assert err.startswith("error: --port/--address: cannot listen on 127.0.0.1:") and err.count("\n") == 1


def test_an_unknown_address_is_exit_2(run_main):
    code, _, err = run_main("exporter", "--port", "0", "--address", "no-such-host.invalid")
    assert code == 2 and err.startswith("error: --port/--address: cannot listen on no-such-host.invalid:0")


def test_the_default_port_is_the_one_the_procfile_and_compose_use():
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[3]
    assert f"cachewarm exporter --port {DEFAULT_PORT}" in (root / "Procfile").read_text()
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())
    assert str(DEFAULT_PORT) in compose["services"]["exporter"]["command"]
    assert parse_port("0") == 0 and parse_port(str(DEFAULT_PORT)) == DEFAULT_PORT
