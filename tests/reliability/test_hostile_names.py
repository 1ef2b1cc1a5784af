"""Issue 7, fault 11: hostile names and keys through invalidate, warm and stats.

Names that are glob patterns, very long, look like our own keys, or hold control
characters only ever touch their own key: every other key keeps its value. The
names survive every hop (argv, Celery's JSON, Redis, DynamoDB) unchanged, and
printing them cannot drive the terminal.
"""

from __future__ import annotations

import json

import pytest
import redis

from cachewarm import service
from cachewarm.cache import NO_VALUE
from cachewarm.settings import Settings
from tests.support.celery_procs import celery_app_for, start_worker
from tests.support.items import restaurant
from tests.support.tables import batch_put

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VICTIMS = ["Star", "Starbucks", "Star1", "S", "Other", "Caf", "é"]


def hostile_names(prefix: str) -> list[str]:
    """Names a hostile or careless user could feed us (argv-safe: no NUL)."""
    return [
        "*", "Star*", "S*", "?", "Sta?", "[S]tar", "[^a]*", "\\*", "Star\\", "{Star}", "%2A", "%", "Star%",
        "Star Star", " Star", "Star ", "a:b", f"{prefix}:v2:{{Star}}:sum", f"{prefix}:v2:{{*}}:sum", "../Star",
        "L" * 1000, "é" * 500, "東京 寿司", "🍣 *",  # DynamoDB: a sort key holds at most 1024 bytes
        "tab\tname", "new\nline", "cr\rname", "esc\x1b[31mred\x1b[0m", "bell\x07", "del\x7f", "c1\x9bname",
        "rtl\u202eevil", "zero\u200bwidth",
    ]


#: Reach the workers through Celery's JSON, never through argv.
NUL_NAMES = ["nul\x00name", "\x00"]


def snapshot(client: redis.Redis) -> dict[bytes, bytes | None]:
    """Every key and its value, except counters that move on every operation and short-lived fill leases."""
    out = {}
    for key in client.scan_iter(count=1000):
        if b":stats:" in key or b":hot:" in key or b":lease:" in key:
            continue
        out[key] = client.dump(key)
    return out


def test_hostile_names_touch_only_their_own_keys(rel_env, table, ledger, celery_proc, cli, record):
    settings = Settings.from_env(rel_env)
    hostile = hostile_names(settings.key_prefix)
    everyone = hostile + NUL_NAMES + VICTIMS
    assert len(set(everyone)) == len(everyone)
    batch_put(table, [restaurant(n) for n in everyone])
    engine = service.engine(settings)
    for name in everyone:
        result = engine.fetch(name)
        assert result.found and result.summary.restaurant["name"] == name, repr(name)
    engine.flush()
    client = redis.Redis.from_url(settings.cache_url)
    keys = {name: engine.keys.summary(name).encode() for name in everyone}
    assert len(set(keys.values())) == len(everyone), "two names share a key"
    assert all(b"*" not in k and b"?" not in k and b"[" not in k and b" " not in k for k in keys.values())
    before = snapshot(client)
    assert set(keys.values()) <= set(before)

    # invalidate: by name through the shell (and NUL names through the API); only their own keys go.
    removed = cli("invalidate", *hostile, "--json", env=rel_env)
    assert removed.returncode == 0, removed.stderr
    assert json.loads(removed.stdout)["removed"] == len(hostile)  # each name found its own key, and only it
    for name in NUL_NAMES:
        assert engine.invalidate(name) is True
    after = snapshot(client)
    gone = set(before) - set(after)
    assert gone == {keys[n] for n in hostile + NUL_NAMES}
    assert all(after[k] == before[k] for k in after if k in before), "a value changed that should not have"
    assert all(engine.peek(v) is not NO_VALUE for v in VICTIMS)
    empty = cli("invalidate", "", env=rel_env)
    assert empty.returncode in (1, 2) and "Traceback" not in empty.stderr
    assert snapshot(client) == after

    # warm: through a real worker; names cross argv, Celery's JSON and Redis unchanged.
    start_worker(celery_proc, rel_env)
    warmed = cli("warm", *hostile, "--wait", "--json", env=rel_env)
    assert warmed.returncode == 0, warmed.stderr
    assert sorted(json.loads(warmed.stdout)["warmed"]) == sorted(hostile)
    app = celery_app_for(rel_env)
    report = app.send_task("cachewarm.warm_names", args=[NUL_NAMES]).get(timeout=60)
    app.close()
    assert sorted(report["warmed"]) == sorted(NUL_NAMES)
    for name in hostile + NUL_NAMES:
        entry = engine.peek(name)
        assert entry is not NO_VALUE and entry.summary.restaurant["name"] == name, repr(name)
    final = snapshot(client)
    assert all(final[k] == before[k] for k in before if k not in gone), "warming touched another key"
    human = cli("warm", "esc\x1b[31mred\x1b[0m", "cr\rname", "--wait", env=rel_env)
    assert human.returncode == 0, human.stderr
    assert not set(human.stdout) & {"\x1b", "\r", "\x07", "\x9b"}, repr(human.stdout)

    # stats: hostile names come back exactly in JSON, and harmlessly in the table.
    final = snapshot(client)
    stats = cli("stats", "--json", "--top", "100", env=rel_env)
    assert stats.returncode == 0, stats.stderr
    ranked = {hot["name"] for hot in json.loads(stats.stdout)["hot_keys"]}
    assert set(hostile) <= ranked
    table_out = cli("stats", "--top", "100", env=rel_env)
    assert table_out.returncode == 0, table_out.stderr
    assert not set(table_out.stdout) & {"\x1b", "\r", "\x07", "\x9b", "\x00"}, "stats printed raw control characters"
    assert snapshot(client) == final  # stats only reads
    record(hostile_names=len(hostile) + len(NUL_NAMES), victims=len(VICTIMS), other_keys_touched=0,
           longest_name_chars=max(len(n) for n in hostile), lost=0, duplicates=ledger.duplicates())
