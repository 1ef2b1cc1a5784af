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
