"""Outages of the gateway's dependencies, on private servers a test stops and starts: a submit
is either queued or leaves nothing behind, and a database that is down answers 503, not 500."""

from __future__ import annotations

import asyncio
import shutil
import signal
from collections.abc import Iterator

import nats
import pytest

from gateway.store import NewJob
from seoblog_contracts import JobSpec, Subjects, new_event_id, utcnow
from seoblog_testing import wait_until
from seoblog_testing.cluster import NatsServer, PostgresServer, scratch_dir


@pytest.fixture
def private_nats() -> Iterator[NatsServer]:
    root = scratch_dir()
    server = NatsServer(root).start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.process.send_signal(signal.SIGCONT)
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    root = scratch_dir()
    server = PostgresServer(root, max_connections=30).start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


async def submitted_in_stream(url: str, namespace: str, job_id: str) -> int:
    """How many submitted events of `job_id` the stream holds."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        subjects = Subjects(namespace)
        sub = await js.pull_subscribe(subjects.submitted_any, stream=subjects.stream)
        found = 0
        while True:
            try:
                msgs = await sub.fetch(100, timeout=1)
            except TimeoutError:
                return found
            found += sum(1 for m in msgs if job_id.encode() in m.data)
    finally:
        await nc.close()


async def test_submit_while_nats_is_down_answers_503_and_leaves_nothing(
    service_env, jobs, private_nats
):
    env = service_env | {"NATS_URL": private_nats.url}
    async with jobs.in_process(jobs.settings(env)) as (app, client):
        client.headers.update(jobs.admin)
        private_nats.stop()
        await wait_until(lambda: not app.state.parts.bus.nc.is_connected)
        headers = {"Idempotency-Key": "during-the-outage"}
        down = await client.post("/v1/jobs", json=jobs.good, headers=headers)
        assert down.status_code == 503, down.text
        assert down.json()["error"]["code"] == "bus_unavailable"
        assert int(down.headers["Retry-After"]) > 0
        assert (await client.get("/v1/jobs")).json()["data"] == []  # nothing written

        private_nats.start()
        await wait_until(lambda: app.state.parts.bus.nc.is_connected, timeout_s=30)
        again = await client.post("/v1/jobs", json=jobs.good, headers=headers)
        assert again.status_code == 202, again.text  # the key was not used up by the 503
        listed = (await client.get("/v1/jobs")).json()["data"]
        assert [j["id"] for j in listed] == [again.json()["id"]]


async def test_a_submit_whose_publish_times_out_is_queued_once_and_its_retry_finds_it(
    service_env, jobs, private_nats
):
    env = service_env | {"NATS_URL": private_nats.url}
    settings = jobs.settings(env, publish_timeout_s=1.0, relay_after_s=2.0, relay_interval_s=0.2)
    async with jobs.in_process(settings) as (app, client):
        client.headers.update(jobs.admin)
        headers = {"Idempotency-Key": "stalled-broker"}
        assert private_nats.process is not None
        # A frozen broker: the connection looks up, the publish may or may not have gone out.
        private_nats.process.send_signal(signal.SIGSTOP)
        try:
            first = await client.post("/v1/jobs", json=jobs.good, headers=headers)
        finally:
            private_nats.process.send_signal(signal.SIGCONT)
        assert first.status_code == 202, first.text
        job_id = first.json()["id"]
        assert first.json()["state"] == "queued"

        retry = await client.post("/v1/jobs", json=jobs.good, headers=headers)
        assert retry.status_code == 200
        assert retry.json()["id"] == job_id

        await wait_until(lambda: app.state.relay.republished >= 1, timeout_s=20)
        store = app.state.parts.store
        await wait_until(
            lambda: store.pool.fetchval(
                "SELECT publish_due IS NULL FROM jobs WHERE job_id = $1", job_id
            ),
            timeout_s=20,
        )
        assert await submitted_in_stream(private_nats.url, env["SEOBLOG_NAMESPACE"], job_id) == 1
        assert len((await client.get("/v1/jobs")).json()["data"]) == 1


async def test_a_job_written_but_never_published_is_published_by_the_relay(
    service_env, jobs, private_nats
):
    env = service_env | {"NATS_URL": private_nats.url}
    settings = jobs.settings(env, relay_after_s=0.5, relay_interval_s=0.2)
    async with jobs.in_process(settings) as (app, client):
        client.headers.update(jobs.admin)
        # As if a gateway had died between writing the row and publishing the event.
        store = app.state.parts.store
        job_id, event_id = new_event_id(), new_event_id()
        spec = JobSpec(url="https://example.com/orphan")
        await store.create_job(NewJob(job_id, spec, event_id, utcnow(), None, publish_after_s=0.5))
        await wait_until(lambda: app.state.relay.republished >= 1, timeout_s=10)
        namespace = env["SEOBLOG_NAMESPACE"]
        assert await submitted_in_stream(private_nats.url, namespace, job_id) == 1
        # A confirmed submit is left alone, even while it waits in the queue.
        job = await jobs.submit(client, url="https://example.com/confirmed")
        await asyncio.sleep(1.5)
        assert app.state.relay.republished == 1
        assert await submitted_in_stream(private_nats.url, namespace, job["id"]) == 1


async def test_while_postgres_is_down_the_gateway_answers_503_never_500(
    service_env, jobs, private_postgres
):
    env = service_env | {"DATABASE_URL": private_postgres.url}
    async with jobs.in_process(jobs.settings(env)) as (_, client):
        client.headers.update(jobs.admin)
        job = await jobs.submit(client)
        private_postgres.stop()
        answers = [
            await client.get("/v1/jobs"),
            await client.get(f"/v1/jobs/{job['id']}x"),
            await client.post("/v1/jobs", json=jobs.good | {"url": "https://example.com/b"}),
            await client.get("/v1/posts"),
        ]
        for answer in answers:
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"]["code"] == "database_unavailable"
            assert int(answer.headers["Retry-After"]) > 0

        private_postgres.start()

        async def back() -> bool:
            return (await client.get("/v1/jobs")).status_code == 200

        await wait_until(back, timeout_s=30, interval_s=0.5)
        await asyncio.sleep(0)
