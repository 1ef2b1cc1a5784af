"""The README stays true: every setting (read from its declaration) and every task it should name is there."""

import re
from pathlib import Path

import pytest

from cachewarm.settings import SPECS, Spec

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
NAME = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")


def table_after(heading: str) -> list[list[str]]:
    """The body rows (cells stripped) of the first Markdown table after ``heading``."""
    rest = README[README.index(heading):]
    rows = []
    for line in rest.splitlines()[1:]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows:
            break
    assert rows and set(rows[1][0]) <= set("-: "), f"no table after {heading!r}"
    return rows[2:]


CONFIGURATION = table_after("## Configuration")
BEAT = table_after("**Beat**")


def names_in(cell: str) -> list[str]:
    """Variable names written in backticks in a cell (``top=WARM_HOT_TOP_K`` counts too)."""
    return [name for span in re.findall(r"`([^`]+)`", cell) for name in NAME.findall(span)]


def documented_defaults() -> dict[str, str]:
    """Each variable's default as the README writes it, from the Configuration and Beat tables."""
    found: dict[str, str] = {}
    for variables, default, _ in CONFIGURATION:
        if default != "see Beat":  # a "see Beat" row is checked against the Beat table
            found[names_in(variables)[0]] = default
    for variable, default, task in BEAT:
        found[names_in(variable)[0]] = default
        # Parameters named in the task column: "`top=WARM_HOT_TOP_K` (default 100)".
        for name, value in re.findall(r"`\w+=([A-Z_]+)` \(default ([^)]+)\)", task):
            found[name] = f"`{value}`"
        for name in names_in(task):
            found.setdefault(name, "(unset)")
    return found


def matches(spec: Spec, written: str) -> bool:
    if spec.default is None:
        return written.startswith("(unset")
    literal = re.fullmatch(r"`([^`]*)`", written)
    if literal is None:
        return False
    return spec.kind(literal.group(1)) == spec.default


@pytest.mark.parametrize("spec", SPECS.values(), ids=list(SPECS))
def test_every_setting_is_documented_with_its_default(spec):
    defaults = documented_defaults()
    assert spec.env in defaults, f"{spec.env} is not in the README's Configuration or Beat table"
    assert matches(spec, defaults[spec.env]), f"{spec.env}: README says {defaults[spec.env]}, code {spec.default!r}"


def test_the_readme_names_no_variable_the_settings_do_not_know():
    known = {spec.env for spec in SPECS.values()} | {s.fallback for s in SPECS.values() if s.fallback}
    named = {name for row in CONFIGURATION + BEAT for cell in row for name in names_in(cell)}
    assert named - known == set()


def test_a_see_beat_row_names_only_what_the_beat_table_documents():
    beat = {name for row in BEAT for cell in (row[0], row[2]) for name in names_in(cell)}
    for variables, default, _ in CONFIGURATION:
        if default == "see Beat":
            assert set(names_in(variables)) <= beat


def test_every_task_is_listed_with_its_queue():
    from workers import app
    from workers.config import ROUTES

    app.loader.import_default_modules()
    # The project's tasks, defined in workers/; a test-support task (tests/support/poison.py) that another
    # test imported into this process is not one of them.
    ours = sorted(name for name, task in app.tasks.items()
                  if name.startswith("cachewarm.") and type(task).__module__.startswith("workers."))
    assert ours, "no tasks registered"
    for name in ours:
        assert f"`{name}`" in README, name
        assert name in ROUTES, f"{name} has no queue route"


def test_the_two_commands_are_shown():
    assert "make demo" in README and "make test" in README
