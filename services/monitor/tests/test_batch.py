"""Batches of events: one transaction per batch, each latency counted once, no row per event."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta

import asyncpg
import pytest

from monitor.pipeline import (
    JOB_PART,
    SPANS,
    TRANSLATE_PART,
    CostReport,
    RecentIds,
    Transition,
    bucket_value,
    earliest_per_state,
    observe_new,
    sketch_bucket,
    sketch_quantile,
)
from monitor.settings import Settings
from monitor.store import PgMonitorStore
from seoblog_contracts import JobState, utcnow
from seoblog_testing import settings_for

T0 = datetime(2026, 1, 1, 12, 0, 0).astimezone()


def t(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def life(job: str) -> list[Transition]:
    return [
        Transition(job, JobState.QUEUED, t(0)),
        Transition(job, JobState.CRAWLING, t(1)),
        Transition(job, JobState.TRANSLATING, t(3)),
        Transition(job, JobState.GENERATING, t(6)),
        Transition(job, JobState.COMPLETED, t(10)),
    ]


def test_earliest_per_state_keeps_one_transition_per_job_and_state_the_earliest():
    kept = earliest_per_state(
        [
            Transition("a", JobState.CRAWLING, t(2)),
            Transition("b", JobState.CRAWLING, t(5)),
            Transition("a", JobState.CRAWLING, t(1)),
            Transition("a", JobState.QUEUED, t(0)),
        ]
    )
    assert [(k.job_id, k.state, k.at) for k in kept] == [
        ("a", JobState.CRAWLING, t(1)),
        ("b", JobState.CRAWLING, t(5)),
        ("a", JobState.QUEUED, t(0)),
    ]


def test_observe_new_counts_each_span_once_when_a_whole_life_arrives_in_one_batch():
    new = life("a")
    times = {"a": {x.state: x.at for x in new}}

    observed = observe_new(new, times)

    spans = sorted(name for _, o in observed for name, _ in o.latencies)
    assert spans == sorted(span.name for span in SPANS)
    finished = [o.finished for _, o in observed if o.finished is not None]
    assert finished == [JobState.COMPLETED]


def test_observe_new_measures_against_states_recorded_in_earlier_batches():
    older = life("a")[:2]
    new = life("a")[2:3]  # translating, after queued and crawling were recorded before
    times = {"a": {x.state: x.at for x in older + new}}

    ((_, observation),) = observe_new(new, times)

    assert observation.latencies == [("crawl", 2.0)]


def test_recent_ids_counts_a_redelivery_once_and_forgets_the_oldest():
    recent = RecentIds(size=2)
    assert recent.add("a")
    assert recent.add("b")
    assert not recent.add("a")
    assert recent.add("c")  # "b" is the oldest now and is forgotten
    assert recent.add("b")


def test_sketch_buckets_hold_values_within_one_percent():
    for seconds in (0.0012, 0.5, 1, 2, 3.7, 60, 3600 * 4):
        assert bucket_value(sketch_bucket(seconds)) == pytest.approx(seconds, rel=0.01)


def test_sketch_quantile_interpolates_like_percentile_cont():
    buckets = {sketch_bucket(0.5): 1, sketch_bucket(1.0): 1}
    assert sketch_quantile(buckets, 0.5) == pytest.approx(0.75, rel=0.01)
    assert sketch_quantile(buckets, 0.95) == pytest.approx(0.975, rel=0.01)
    many = Counter(sketch_bucket(float(v)) for v in range(1, 101))
    assert sketch_quantile(many, 0.5) == pytest.approx(50.5, rel=0.01)
    assert sketch_quantile(many, 0.95) == pytest.approx(95.05, rel=0.01)
    assert sketch_quantile({}, 0.5) is None


async def _store(service_env: dict[str, str]) -> PgMonitorStore:
    settings = settings_for(Settings, service_env)
    store = PgMonitorStore(settings.database_url, settings.schema_name, pool_max=4)
    await store.migrate()
    await store.open()
    return store


async def test_a_batch_is_recorded_once_and_a_redelivered_batch_changes_nothing(service_env):
    store = await _store(service_env)
    try:
        batch = life("a") + life("b")[:2]
        first = await store.record_batch(batch)
        again = await store.record_batch(batch)
        earlier = await store.record_batch([Transition("a", JobState.CRAWLING, t(0.5))])

        assert [(x.job_id, x.state) for x, _ in first] == [(x.job_id, x.state) for x in batch]
        assert again == []
        assert earlier == []  # an earlier time for a known state is kept, and is no news
        latency = await store.latencies()
        assert latency["end_to_end"].count == 1
        assert latency["end_to_end"].p50 == pytest.approx(10, rel=0.01)
        assert latency["queue"].count == 2
        assert await store.job_counts() == {"completed": 1, "crawling": 1}
    finally:
        await store.close()


async def test_rollups_answer_windows_and_outlive_the_pruned_job_states(service_env):
    store = await _store(service_env)
    now = utcnow()
    old = [
        Transition("old", JobState.QUEUED, now - timedelta(minutes=30)),
        Transition("old", JobState.FAILED, now - timedelta(minutes=29), "crawl", "not_found"),
    ]
    recent = [
        Transition("new", JobState.QUEUED, now - timedelta(seconds=3)),
        Transition("new", JobState.COMPLETED, now - timedelta(seconds=1)),
    ]
    try:
        await store.record_batch(old + recent)

        assert await store.failures() == {"crawl:not_found": 1}
        assert await store.failures(window_s=120) == {}
        finished = await store.finished_jobs(120)
        assert (finished.completed, finished.failed) == (1, 0)
        assert (await store.latencies(120))["end_to_end"].count == 1
        assert await store.prune_job_states(older_than_s=600) == 2  # "old" finished long ago
        assert await store.job_counts() == {"completed": 1, "failed": 1}
        assert await store.failures() == {"crawl:not_found": 1}
    finally:
        await store.close()


async def test_two_replicas_recording_one_job_at_once_observe_each_span_once(service_env):
    stores = [await _store(service_env), await _store(service_env)]
    try:
        for round_ in range(10):
            job = f"job-{round_}"
            states = life(job)
            halves = [states[0::2], states[1::2]]  # each replica gets every other state
            results = await asyncio.gather(
                *(s.record_batch(h) for s, h in zip(stores, halves, strict=True))
            )
            spans = [name for observed in results for _, o in observed for name, _ in o.latencies]
            assert sorted(spans) == sorted(span.name for span in SPANS), round_
        latency = await stores[0].latencies()
        assert all(latency[span.name].count == 10 for span in SPANS)
    finally:
        for store in stores:
            await store.close()


async def test_the_monitor_keeps_no_row_per_event(service_env):
    store = await _store(service_env)
    try:
        await store.record_batch(life("a"))
        conn = await asyncpg.connect(service_env["DATABASE_URL"])
        try:
            tables = await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
                store.schema,
            )
        finally:
            await conn.close()
        assert "seen_events" not in {r["table_name"] for r in tables}
    finally:
        await store.close()


async def test_a_jobs_cost_counts_once_across_batches_and_redeliveries(service_env):
    store = await _store(service_env)
    now = utcnow()
    translated = CostReport("a", TRANSLATE_PART, 0.4, 10, now)
    whole = CostReport("a", JOB_PART, 1.5, 30, now)
    alone = CostReport("b", JOB_PART, 0.25, 5, now)
    try:
        assert await store.record_batch([], [translated]) == []  # reports without states
        await store.record_batch([], [translated, alone])  # a redelivery, and a new job
        await store.record_batch([Transition("a", JobState.COMPLETED, now)], [whole, whole])
        await store.record_batch([], [whole, translated, alone])  # all of it again

        assert await store.llm_cost(3600) == pytest.approx(1.75)
    finally:
        await store.close()
