"""Batches of events: one transaction per batch, each latency counted once, no row per event."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import asyncpg

from monitor.pipeline import (
    SPANS,
    RecentIds,
    Transition,
    earliest_per_state,
    observe_new,
)
from monitor.settings import Settings
from monitor.store import PgMonitorStore
from seoblog_contracts import JobState
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

        assert [(x.job_id, x.state) for x in first.new] == [(x.job_id, x.state) for x in batch]
        assert first.times["a"][JobState.COMPLETED] == t(10)
        assert again.new == []
        assert earlier.new == []
        latency = await store.latencies()
        assert latency["end_to_end"].count == 1
        assert latency["queue"].count == 2
        assert latency["queue"].p50 == 0.75  # a's crawl start moved to its earlier event
        assert await store.job_counts() == {"completed": 1, "crawling": 1}
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
            spans = [
                name
                for recorded in results
                for _, o in observe_new(recorded.new, recorded.times)
                for name, _ in o.latencies
            ]
            assert sorted(spans) == sorted(span.name for span in SPANS), round_
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
