"""The commands are importable functions in per-module Typer apps, composed into one console script."""

from __future__ import annotations

import inspect
import json
import re

import fakeredis
import pytest
import typer

import cachewarm_cli
from cachewarm_cli import bench, demo, feed, load, read, stack, stats, table, warm, write

#: What README.md's "The shell" section lists, and nothing else.
TOP_LEVEL = {"table", "generate", "load", "get", "warm", "review", "invalidate", "bench", "stats", "stack", "demo",
             "feed", "exporter"}
GROUPS = {"table": {"create", "delete"}, "review": {"add"}, "bench": {"list", "show", "compare"},
          "stack": {"up", "run"}, "feed": {"follow"}}


def root_group():
    return typer.main.get_group(cachewarm_cli.app)


def test_every_module_has_its_own_typer_app_with_module_level_commands():
    modules = (bench, demo, feed, load, read, stack, stats, table, warm, write)
    for module in modules:
        assert isinstance(module.app, typer.Typer), module.__name__
        for info in module.app.registered_commands:
            assert info.callback.__module__ == module.__name__
            # module level: reachable by name, not a closure inside a function
            assert getattr(module, info.callback.__name__) is info.callback
            assert "<locals>" not in info.callback.__qualname__
    assert inspect.isfunction(load.load) and inspect.isfunction(read.get) and inspect.isfunction(write.add)


def test_the_console_script_lists_the_readme_commands_and_groups():
    group = root_group()
    assert set(group.commands) == TOP_LEVEL
    for name, subcommands in GROUPS.items():
        assert set(group.commands[name].commands) == subcommands, name


def test_readme_shell_section_names_every_command():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = readme.split("## The shell", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^cachewarm (\w[\w-]*)", section, flags=re.MULTILINE))
    assert listed == TOP_LEVEL


def test_load_help_states_the_loaders_and_the_fanouts_real_defaults(runner):
    from loaders import DEFAULT_THREADS, DEFAULT_WORKERS
    from workers.fanout import CHUNK_LINES

    assert load.CHUNK_LINES_DEFAULT == CHUNK_LINES
    options = {p.name: p for p in typer.main.get_command(load.app).commands["load"].params}
    assert options["workers"].help == f"Writer processes (default {DEFAULT_WORKERS})."
    assert options["threads"].help == f"Concurrent batch requests per writer (default {DEFAULT_THREADS})."
    assert f"(default {CHUNK_LINES})" in options["chunk_lines"].help


# -- bad usage: exit code 2, one line ----------------------------------------------------------


@pytest.mark.parametrize("extra", [["--resume"], ["--workers", "2"], ["--checkpoint", "c.ckpt"]])
def test_local_only_load_options_with_async_are_a_usage_error(runner, tmp_path, extra):
    source = tmp_path / "items.jsonl"
    source.write_text("{}\n")
    result = runner.invoke(load.app, ["load", str(source), "--async", *extra])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: --resume, --workers and --checkpoint")
    assert result.stdout == ""


def test_chunk_lines_without_async_is_a_usage_error(runner, tmp_path):
    result = runner.invoke(load.app, ["load", str(tmp_path / "x.jsonl"), "--chunk-lines", "10"])
    assert (result.exit_code, result.stderr) == (2, "error: --chunk-lines applies to --async loads\n")


def test_get_with_an_empty_name_is_a_usage_error(runner, monkeypatch):
    def unreachable(*args, **kwargs):
        raise AssertionError("an empty name must not reach the core")

    monkeypatch.setattr("cachewarm.service.fetch_restaurant_summary", unreachable)
    result = runner.invoke(cachewarm_cli.app, ["get", ""])
    assert (result.exit_code, result.stderr) == (2, "error: NAME must be a restaurant name, not empty\n")


@pytest.mark.parametrize(("argv", "message"), [
    (["warm"], "error: give names, or --top K (one of the two)\n"),
    (["warm", "A", "--top", "3"], "error: give names, or --top K (one of the two)\n"),
    (["invalidate"], "error: give names, or --stale, or --all (exactly one)\n"),
    (["invalidate", "A", "--all"], "error: give names, or --stale, or --all (exactly one)\n"),
    (["stack", "run"], "error: give a command to run after --\n"),
])
def test_ambiguous_choices_are_a_usage_error(runner, argv, message):
    result = runner.invoke(cachewarm_cli.app, argv)
    assert (result.exit_code, result.stderr) == (2, message)


def test_a_bad_setting_is_one_line_naming_the_variable_and_exit_2(run_main, monkeypatch):
    monkeypatch.setenv("CACHE_TTL_SECONDS", "soon")
    code, out, err = run_main("get", "Thai Spot")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: CACHE_TTL_SECONDS='soon' is invalid")


def test_an_unexpected_error_is_one_line_without_traceback(run_main, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("cachewarm.service.fetch_restaurant_summary", boom)
    code, _, err = run_main("get", "Thai Spot")
    assert code == 1
    assert err == "error: unexpected RuntimeError: disk on fire (set CACHEWARM_DEBUG=1 for details)\n"


# -- commands on moto and fakeredis ---------------------------------------------------------------


@pytest.fixture
def local_services(monkeypatch, moto_dynamodb, fake_server):
    """DynamoDB is moto, the cache is fakeredis: the commands run unchanged on top."""
    monkeypatch.setattr("cachewarm.service.cache_redis",
                        lambda settings=None: fakeredis.FakeRedis(server=fake_server))
    return moto_dynamodb


def test_table_get_and_invalidate_on_moto_and_fakeredis(runner, local_services):
    from cachewarm import service
    from tests.support.items import put_items, restaurant, review

    created = runner.invoke(table.app, ["create"])
    assert (created.exit_code, created.stdout) == (0, "table Restaurants created; ACTIVE\n")
    assert runner.invoke(table.app, ["create"]).stdout == "table Restaurants already exists; ACTIVE\n"
    put_items(service.repository(), [restaurant("Thai Spot"), review("Thai Spot", "r1", "2024-01-02T00:00:00")])

    first = runner.invoke(cachewarm_cli.app, ["get", "Thai Spot", "--json"])
    second = runner.invoke(cachewarm_cli.app, ["get", "Thai Spot", "--json"])
    assert first.exit_code == second.exit_code == 0
    assert (json.loads(first.stdout)["source"], json.loads(second.stdout)["source"]) == ("db", "cache")
    assert [r["id"] for r in json.loads(second.stdout)["reviews"]] == ["r1"]

    removed = runner.invoke(write.app, ["invalidate", "Thai Spot", "--json"])
    assert json.loads(removed.stdout) == {"mode": "names", "removed": 1}
    assert json.loads(runner.invoke(read.app, ["Thai Spot", "--json"]).stdout)["source"] == "db"

    missing = runner.invoke(cachewarm_cli.app, ["get", "Nowhere"])
    assert (missing.exit_code, missing.stderr) == (1, "restaurant 'Nowhere' not found\n")
    gone = runner.invoke(table.app, ["delete"])
    assert (gone.exit_code, gone.stdout) == (0, "table Restaurants deleted\n")
