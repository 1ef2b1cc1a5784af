"""The README stays true: every setting and every task it should name is there."""

from pathlib import Path

from cachewarm.settings import ENV_VARS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_environment_variable_is_documented():
    missing = [var for var in ENV_VARS.values() if f"`{var}`" not in README]
    assert not missing


def test_every_task_is_listed_with_its_queue():
    from workers import app
    from workers.config import ROUTES

    app.loader.import_default_modules()
    ours = sorted(name for name in app.tasks if name.startswith("cachewarm."))
    assert ours, "no tasks registered"
    for name in ours:
        assert f"`{name}`" in README, name
        assert name in ROUTES, f"{name} has no queue route"


def test_the_two_commands_are_shown():
    assert "make demo" in README and "make test" in README
