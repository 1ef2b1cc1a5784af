"""workers/flowerconfig.py: what Flower reads from it (run as Flower runs it), without servers."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

FLOWERCONFIG = Path(__file__).resolve().parents[3] / "workers" / "flowerconfig.py"


@pytest.fixture
def flower_options():
    import flower.options  # noqa: F401 - defines Flower's tornado options, as `celery flower` does

    from cachewarm import service

    service.reset()
    yield
    service.reset()


def test_flowerconfig_reads_the_settings(monkeypatch, flower_options):
    monkeypatch.setenv("FLOWER_BASIC_AUTH", "ops:pw")
    monkeypatch.delenv("FLOWER_ADDRESS", raising=False)
    monkeypatch.setenv("FLOWER_PORT", "6000")
    conf = runpy.run_path(str(FLOWERCONFIG))
    assert (conf["address"], conf["port"], conf["basic_auth"]) == ("127.0.0.1", 6000, ["ops:pw"])
    assert "args" in conf["tasks_columns"].split(",") and callable(conf["format_task"])


def test_flowerconfig_refuses_to_run_without_authentication(monkeypatch, flower_options, capsys):
    monkeypatch.delenv("FLOWER_BASIC_AUTH", raising=False)
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(FLOWERCONFIG))
    assert info.value.code == 2
    assert "FLOWER_BASIC_AUTH is not set" in capsys.readouterr().err


def test_flowerconfig_shows_progress_of_running_tasks(monkeypatch, flower_options):
    monkeypatch.setenv("FLOWER_BASIC_AUTH", "ops:pw")
    format_task = runpy.run_path(str(FLOWERCONFIG))["format_task"]

    class Result:
        state, info = "PROGRESS", {"done": 30, "total": 120}

    import workers

    monkeypatch.setattr(workers.app, "AsyncResult", lambda task_id: Result())

    class Task:
        uuid, state, result = "t1", "STARTED", None

    assert format_task(Task()).result == "progress 30/120 (25%)"
    done = Task()
    done.state, done.result = "SUCCESS", "{'ok': 1}"
    assert format_task(done).result == "{'ok': 1}"


def test_flowerconfig_makes_flower_read_only_unless_the_operator_says_otherwise(monkeypatch, flower_options):
    monkeypatch.setenv("FLOWER_BASIC_AUTH", "ops:pw")
    monkeypatch.delenv("FLOWER_READ_ONLY", raising=False)
    assert runpy.run_path(str(FLOWERCONFIG))["read_only"] is True
    # Flower parses FLOWER_READ_ONLY itself, before the file: the file then leaves the option alone.
    for value in ("false", "0", "true"):
        monkeypatch.setenv("FLOWER_READ_ONLY", value)
        assert "read_only" not in runpy.run_path(str(FLOWERCONFIG))


def test_flowerconfig_refuses_a_flower_without_read_only_mode(monkeypatch, flower_options, capsys):
    from tornado.options import options

    monkeypatch.setenv("FLOWER_BASIC_AUTH", "ops:pw")
    monkeypatch.delenv("FLOWER_READ_ONLY", raising=False)
    saved = options._options.pop("read-only")  # as in Flower < 2.1
    try:
        with pytest.raises(SystemExit) as info:
            runpy.run_path(str(FLOWERCONFIG))
        assert info.value.code == 2 and "no read-only mode" in capsys.readouterr().err
        monkeypatch.setenv("FLOWER_READ_ONLY", "false")  # the operator accepts actions
        assert "read_only" not in runpy.run_path(str(FLOWERCONFIG))
    finally:
        options._options["read-only"] = saved


def test_the_app_points_flowers_default_conf_at_the_installed_file(flower_options):
    """`celery -A workers flower` needs no --conf: importing the app sets Flower's default to this file."""
    import importlib

    from flower.options import DEFAULT_CONFIG_FILE
    from tornado.options import options

    app_module = importlib.import_module("workers.app")  # `workers.app` is the Celery app's name too
    saved = options.conf
    try:
        options.conf = DEFAULT_CONFIG_FILE
        app_module._flower_reads_our_config()
        assert Path(options.conf) == Path(app_module.__file__).with_name("flowerconfig.py") == FLOWERCONFIG
        # An explicit choice (--conf, FLOWER_CONF) is applied by Flower afterwards, and is never overridden.
        options.conf = "/etc/other-flowerconfig.py"
        app_module._flower_reads_our_config()
        assert options.conf == "/etc/other-flowerconfig.py"
    finally:
        options.conf = saved
