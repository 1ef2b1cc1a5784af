"""The shipped Grafana dashboard and Prometheus alert rules name only metrics ``cachewarm exporter`` serves.

Every PromQL expression in ``deploy/`` is tokenized (strings, label matchers, ranges, grouping label lists,
numbers and Grafana variables removed; an identifier followed by ``(`` is a function or an aggregation),
and each metric name left must be one the collector serves on fakeredis with every source filled
(tests/support/exporter.py). A renamed metric therefore fails here, not on a dark dashboard.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.exporter import served_names

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "cachewarm-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus" / "cachewarm-alerts.yml"

#: Series Prometheus writes itself for every target, not the exporter.
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
            "offset", "atan2", "inf", "nan"}
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    text = re.sub(r"\$\{?\w+\}?", " ", expr)  # Grafana variables ($job, $__rate_interval)
    text = _STRING.sub('""', text)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"(?<![A-Za-z_:])\d[\d.]*(?:e[+-]?\d+)?[smhdwy]?", " ", text, flags=re.IGNORECASE)
    names = set()
    for match in _IDENT.finditer(text):
        name = match.group()
        if name.lower() in KEYWORDS or text[match.end():].lstrip().startswith("("):
            continue
        names.add(name)
    return names


def dashboard_expressions() -> Iterator[tuple[str, str]]:
    """(where, expression) for every panel target and every query variable of the dashboard."""
    board = json.loads(DASHBOARD.read_text())

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))  # rows

    for panel in panels(board["panels"]):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target.get('refId')}", target["expr"]
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            # label_values(metric, label): the metric is the expression; the label is not a series.
            found = re.fullmatch(r"\s*label_values\((.*),\s*\w+\)\s*", query)
            yield f"variable {variable['name']}", found.group(1) if found else query


def alert_expressions() -> Iterator[tuple[str, str]]:
    """(where, expression) for every alerting and recording rule."""
    rules = yaml.safe_load(ALERTS.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            yield f"{group['name']}/{rule.get('alert') or rule.get('record')}", rule["expr"]


@functools.cache
def served() -> frozenset[str]:
    """What the exporter serves, and the series Prometheus adds itself."""
    return frozenset(served_names() | PROMETHEUS_OWN)


EXPRESSIONS = [*dashboard_expressions(), *alert_expressions()]


def test_the_tokenizer_finds_metrics_and_skips_functions_labels_and_numbers():
    expr = ('sum by (queue_name) (rate(cachewarm_cache_hits_total{job=~"$job", window="5m"}[$__rate_interval])) '
            "/ ignoring(le) cachewarm_cache_reads_total > 0.8 and on() up offset 5m or vector(1e3)")
    assert metric_names(expr) == {"cachewarm_cache_hits_total", "cachewarm_cache_reads_total", "up"}
    assert "cachewarm_cache_hit_total" not in served()  # a misspelt name would be caught


def test_both_files_have_expressions():
    kinds = {where.split()[0] for where, _ in EXPRESSIONS}
    assert {"panel", "variable"} <= kinds and any("/" in where for where, _ in EXPRESSIONS)


@pytest.mark.parametrize(("where", "expr"), EXPRESSIONS, ids=[where for where, _ in EXPRESSIONS])
def test_every_expression_names_only_metrics_the_exporter_serves(where, expr):
    names = metric_names(expr)
    assert names, f"{where}: no metric in {expr!r}"
    # Histogram and summary series carry suffixes on their family's name.
    unknown = {n for n in names if n not in served() and re.sub(r"_(bucket|sum|count)$", "", n) not in served()}
    assert not unknown, f"{where}: {sorted(unknown)} not served by cachewarm exporter"
