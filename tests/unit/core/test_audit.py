"""The consistency audit (cachewarm.audit) on fakeredis and moto."""

from __future__ import annotations

import threading
from collections import Counter

import fakeredis
import pytest

from cachewarm.audit import STATE_TTL_SECONDS, AuditReport, cursor_key, pending_key, run_audit
from cachewarm.cache import NO_VALUE, CacheAside
from cachewarm.errors import TransportError
from cachewarm.settings import Settings
from cachewarm.warming import warm_names
from tests.support.items import put_items, restaurant, review


class Recording:
    """The repository, remembering which names each audit re-read (thread-safe: the audit reads concurrently)."""

    def __init__(self, repo):
        self.repo = repo
        self.names: list[str] = []
        self.lock = threading.Lock()

    def get_summary(self, name):
        with self.lock:
            self.names.append(name)
        return self.repo.get_summary(name)

    def take(self) -> list[str]:
        with self.lock:
            names, self.names = self.names, []
        return names


def queries(repo) -> Counter:
    """Counts the DynamoDB Query requests the repository's client sends from now on."""
    sent: Counter = Counter()
    repo.client.meta.events.register("before-call.dynamodb.Query", lambda **_: sent.update(["Query"]))
    return sent


def engine_on(r, repo, **overrides) -> CacheAside:
    return CacheAside(r, repo, Settings(**overrides))


def seed(repo, names, reviews=2) -> None:
    items = []
    for n, name in enumerate(names):
        items.append(restaurant(name))
        items += [review(name, f"{n:03d}{i:037d}", f"2023-01-0{i + 1}T00:00:00") for i in range(reviews)]
    put_items(repo, items)


def cached_names(engine) -> set[str]:
    return {engine.keys.name_from_summary_key(k) for k in engine.redis.scan_iter(match=engine.keys.summary_pattern())}


def audit_cycle(engine, repo, sample, limit=100, **kwargs) -> list[AuditReport]:
    """Run the audit until a run reports ``wrapped`` (one full rotation)."""
    reports = []
    for _ in range(limit):
        reports.append(run_audit(engine, repo, sample, **kwargs))
        if reports[-1].wrapped:
            return reports
    raise AssertionError(f"no cycle completed in {limit} runs: {reports[-3:]}")


# -- the rotation -------------------------------------------------------------------------
def test_rotation_covers_every_key_exactly_once_per_cycle_with_at_most_sample_reads_per_run(r, repo):
    names = [f"R{i:02d}" for i in range(53)]
    seed(repo, names)
    engine = engine_on(r, repo)
    warm_names(engine, names)
    for i in range(300):  # a shared instance: the broker's keys and another tenant's summaries
        r.set(f"celery-task-meta-{i}", "{}", ex=3600)
    r.set("other:v2:{R00}:sum", "{}", ex=3600)
    recording, sent = Recording(repo), queries(repo)

    for cycle in range(2):
        reports: list[AuditReport] = []
        per_run: list[list[str]] = []  # the names each run re-read
        while not reports or not reports[-1].wrapped:
            assert len(reports) < 50, reports[-3:]
            reports.append(run_audit(engine, recording, 7))
            per_run.append(recording.take())
        assert Counter(name for run in per_run for name in run) == Counter(names), f"cycle {cycle}"
        assert all(len(run) <= 7 for run in per_run)
        assert [len(run) for run in per_run] == [report.checked for report in reports]
        assert sum(report.checked for report in reports) == 53
        assert [report.wrapped for report in reports] == [False] * (len(reports) - 1) + [True]
        assert all(report.stale == [] and report.stale_fraction == 0.0 for report in reports)
    assert sent["Query"] == 2 * 53  # each re-read is exactly one Query
    assert cached_names(engine) == set(names)


def test_each_run_makes_at_most_sample_dynamodb_reads(r, repo):
    names = [f"R{i:02d}" for i in range(40)]
    seed(repo, names)
    engine = engine_on(r, repo)
    warm_names(engine, names)
    sent = queries(repo)
    for _ in range(12):
        before = sent["Query"]
        report = run_audit(engine, repo, 3)
        assert sent["Query"] - before == report.checked <= 3


def test_scan_calls_per_run_are_bounded_when_most_keys_are_not_ours(r, repo):
    names = [f"R{i}" for i in range(6)]
    seed(repo, names, reviews=0)
    engine = engine_on(r, repo)
    warm_names(engine, names)
    for i in range(3000):
        r.set(f"celery-task-meta-{i:04d}", "{}", ex=3600)
    recording = Recording(repo)
    reports = audit_cycle(engine, recording, sample=20, max_scan_calls=4)
    assert all(report.scan_calls <= 4 for report in reports)
    assert len(reports) > 1  # 3000 foreign keys do not fit in 4 calls of COUNT 100: the rotation goes on next run
    assert sorted(recording.take()) == sorted(names)


def test_cursor_and_pending_keys_have_a_ttl(r, repo):
    names = [f"R{i}" for i in range(30)]
    seed(repo, names, reviews=0)
    engine = engine_on(r, repo)
    warm_names(engine, names)
    report = run_audit(engine, repo, 5)
    assert report.checked == 5 and not report.wrapped
    # One SCAN (COUNT 100) found all 30; the 25 beyond the sample wait for the next runs.
    assert report.scan_calls == 1 and r.llen(pending_key(engine)) == 25
    for key in (cursor_key(engine), pending_key(engine)):
        assert 0 < r.ttl(key) <= STATE_TTL_SECONDS
    assert cursor_key(engine) == "cw:v2:stats:{audit}:cursor"
    reports = audit_cycle(engine, repo, 5)
    assert len(reports) == 5 and reports[-1].wrapped
    assert r.get(cursor_key(engine)) == b"0" and 0 < r.ttl(cursor_key(engine)) <= STATE_TTL_SECONDS
    assert not r.exists(pending_key(engine))
    assert run_audit(engine, repo, 100).checked == 30  # the next run starts a new cycle


def test_an_empty_cache_completes_a_cycle_at_once(r, repo):
    report = run_audit(engine_on(r, repo), repo, 20)
    assert (report.checked, report.stale, report.stale_fraction, report.wrapped) == (0, [], None, True)
    assert report.to_dict() == {"checked": 0, "stale": [], "stale_fraction": None, "scan_calls": 1,
                                "wrapped": True, "seconds": report.seconds}


# -- what is stale -------------------------------------------------------------------------------------
def test_a_changed_review_text_is_stale_invalidated_and_counted(r, repo):
    names = ["Same", "Edited", "Moved"]
    seed(repo, names)
    engine = engine_on(r, repo)
    warm_names(engine, names)
    # Behind the cache's back, and without touching any version: one review's text, one restaurant attribute.
    edited = review("Edited", f"{1:03d}{1:037d}", "2023-01-02T00:00:00")
    put_items(repo, [{**edited, "review": "rewritten by a moderator"}, {**restaurant("Moved"), "address": "2 Road"}])
    report = run_audit(engine, repo, 20)
    assert report.checked == 3 and sorted(report.stale) == ["Edited", "Moved"]
    assert report.stale_fraction == round(2 / 3, 6)
    assert engine.peek("Edited") is NO_VALUE and engine.peek("Moved") is NO_VALUE
    assert engine.peek("Same") is not NO_VALUE
    counters = engine.metrics.window(60)
    assert counters["audit_checked"] == 3 and counters["audit_stale"] == 2 and counters["invalidations"] == 2
    # Refilled from DynamoDB, they agree again.
    assert engine.fetch("Edited").summary.reviews[0]["review"] == "rewritten by a moderator"
    assert run_audit(engine, repo, 20).stale == []


def test_cached_not_found_of_an_existing_restaurant_and_summary_of_a_deleted_one_are_stale(r, repo):
    seed(repo, ["Gone", "Kept"], reviews=0)
    engine = engine_on(r, repo)
    for name in ("Gone", "Kept", "Later", "Never"):
        engine.fetch(name)  # "Later" and "Never" are cached as not found
    put_items(repo, [restaurant("Later")])
    repo.client.delete_item(TableName=repo.table_name, Key={"PK": {"S": "REST#Gone"}, "SK": {"S": "REST#Gone"}})
    report = run_audit(engine, repo, 20)
    assert report.checked == 4 and sorted(report.stale) == ["Gone", "Later"]
    assert engine.peek("Never") is not NO_VALUE and engine.peek("Never").summary is None
    assert engine.peek("Kept") is not NO_VALUE


def test_an_unreadable_value_is_stale_without_a_dynamodb_read(r, repo):
    engine = engine_on(r, repo)
    r.set(engine.keys.summary("Broken"), b"\xff not json", ex=60)
    recording = Recording(repo)
    report = run_audit(engine, recording, 20)
    assert report.stale == ["Broken"] and recording.take() == []
    assert not r.exists(engine.keys.summary("Broken"))


def test_keys_no_name_encodes_to_are_left_alone_and_do_not_stop_the_rotation(r, repo):
    seed(repo, ["A"], reviews=0)
    engine = engine_on(r, repo)
    engine.fetch("A")
    for odd in ("cw:v2:{}:sum", "cw:v2:{a b}:sum", b"cw:v2:{\xff}:sum"):  # written by hand: not keys we make
        r.set(odd, "{}", ex=60)
    for _ in range(2):
        report = run_audit(engine, repo, 20)
        assert (report.checked, report.stale, report.wrapped) == (1, [], True)
    assert r.exists("cw:v2:{a b}:sum")


def test_entries_that_expire_between_scan_and_get_are_skipped_not_counted(r, repo):
    names = [f"R{i}" for i in range(5)]
    seed(repo, names, reviews=0)
    engine = engine_on(r, repo)
    warm_names(engine, names)
    real_scan = r.scan

    def scan_then_expiry(*args, **kwargs):
        found = real_scan(*args, **kwargs)
        r.delete(engine.keys.summary("R1"), engine.keys.summary("R3"))  # their TTL ran out meanwhile
        return found

    r.scan = scan_then_expiry
    recording = Recording(repo)
    report = run_audit(engine, recording, 20)
    assert report.checked == 3 and report.stale == [] and report.stale_fraction == 0.0
    assert sorted(recording.take()) == ["R0", "R2", "R4"]
    assert engine.metrics.window(60)["audit_checked"] == 3


def test_pending_keys_that_expired_before_the_next_run_are_skipped(r, repo):
    names = [f"R{i}" for i in range(6)]
    seed(repo, names, reviews=0)
    engine = engine_on(r, repo)
    warm_names(engine, names)
    recording = Recording(repo)
    first = run_audit(engine, recording, 2)
    waiting = [engine.keys.name_from_summary_key(k) for k in r.lrange(pending_key(engine), 0, -1)]
    assert len(waiting) == 4
    r.delete(*(engine.keys.summary(name) for name in waiting[:2]))
    rest = audit_cycle(engine, recording, 2)
    assert first.checked + sum(report.checked for report in rest) == 4
    assert sorted(recording.take()) == sorted(set(names) - set(waiting[:2]))


# -- failures ---------------------------------------------------------------------------------------
def test_an_unreachable_cache_is_a_retryable_transport_error(fake_server, r, repo):
    engine = engine_on(r, repo)
    fake_server.connected = False  # every command now fails with ConnectionError
    with pytest.raises(TransportError, match="cannot reach the cache's Redis"):
        run_audit(engine, repo, 20)


def test_a_failed_run_is_redone_not_skipped(r, repo, fake_server):
    names = [f"R{i}" for i in range(4)]
    seed(repo, names, reviews=0)
    engine = engine_on(r, repo)
    warm_names(engine, names)

    class Failing:
        def get_summary(self, name):
            raise TransportError("cannot reach DynamoDB")

    with pytest.raises(TransportError):
        run_audit(engine, Failing(), 2)
    assert not r.exists(cursor_key(engine))  # the position did not move
    recording = Recording(repo)
    audit_cycle(engine, recording, 2)
    assert sorted(recording.take()) == names


def test_sample_must_be_positive(r, repo):
    with pytest.raises(ValueError, match="at least 1"):
        run_audit(engine_on(r, repo), repo, 0)


def test_other_prefixes_are_never_audited(fake_server, repo):
    seed(repo, ["A"], reviews=0)
    ours = engine_on(fakeredis.FakeRedis(server=fake_server), repo, key_prefix="ours")
    theirs = engine_on(fakeredis.FakeRedis(server=fake_server), repo, key_prefix="theirs")
    ours.fetch("A")
    theirs.fetch("A")
    put_items(repo, [{**restaurant("A"), "cuisine": "Lao"}])
    assert run_audit(ours, repo, 20).stale == ["A"]
    assert theirs.peek("A") is not NO_VALUE
