"""How the bus hands messages to handlers: slots, order, batches, signatures, versions, DLQ."""

import asyncio
import json
import logging

import pytest

from seoblog_contracts import JobFailed, JobProgress, Stage
from seoblog_runtime import Bus, ServiceSettings
from seoblog_testing import settings_for, signed_headers, wait_until


def make_bus(service_env: dict[str, str], **overrides: object) -> Bus:
    settings = settings_for(ServiceSettings, service_env, service="probe", **overrides)
    return Bus(settings, stage=Stage.CRAWL)


def progress(job_id: str, percent: int = 10) -> JobProgress:
    return JobProgress(job_id=job_id, stage=Stage.CRAWL, percent=percent)


async def test_one_blocked_message_does_not_hold_back_the_others(service_env):
    bus = make_bus(service_env)
    release = asyncio.Event()
    handled: list[str] = []

    async def handle(event: JobProgress) -> None:
        if event.job_id == "blocker":
            await release.wait()  # e.g. waiting on another replica's single-flight lock
        handled.append(event.job_id)

    bus.consume(bus.subjects.of(JobProgress), "probe-slots", JobProgress, handle, concurrency=4)
    await bus.start()
    try:
        await bus.publish(progress("blocker"))
        others = [f"job-{i}" for i in range(10)]
        for job_id in others:
            await bus.publish(progress(job_id))
        await wait_until(lambda: sorted(handled) == sorted(others), timeout_s=15)
        assert "blocker" not in handled
        release.set()
        await wait_until(lambda: "blocker" in handled)
    finally:
        release.set()
        await bus.stop()


async def test_concurrency_one_keeps_stream_order(service_env):
    bus = make_bus(service_env)
    seen: list[int] = []

    async def handle(event: JobProgress) -> None:
        await asyncio.sleep(0.01 * (event.percent % 3))  # uneven work must not reorder
        seen.append(event.percent)

    bus.consume(bus.subjects.of(JobProgress), "probe-order", JobProgress, handle, concurrency=1)
    await bus.start()
    try:
        for n in range(20):
            await bus.publish(progress("ordered", n))
        await wait_until(lambda: len(seen) == 20)
        assert seen == list(range(20))
    finally:
        await bus.stop()


async def test_long_handler_keeps_its_message_with_heartbeats(service_env):
    bus = make_bus(service_env, ack_wait_s=1.0)
    calls: list[str] = []

    async def slow(event: JobProgress) -> None:
        calls.append(event.job_id)
        await asyncio.sleep(2.5)  # far past ack_wait: only in-progress acks keep it ours

    bus.consume(bus.subjects.of(JobProgress), "probe-slow", JobProgress, slow)
    await bus.start()
    try:
        await bus.publish(progress("slow"))
        await wait_until(lambda: bus.stats["probe-slow"].handled == 1, timeout_s=10)
        await asyncio.sleep(1.5)
        assert calls == ["slow"]
    finally:
        await bus.stop()


async def test_idle_consumers_log_no_error(service_env, caplog):
    """nats-py 2.16 ends some empty pulls with a bare asyncio TimeoutError (a race of its
    pull expiry against its own timer); that is "no message", not an error (issue 9 J)."""
    bus = make_bus(service_env)
    bus.fetch_timeout_s = 0.2

    async def handle(event: JobProgress) -> None:
        pass

    for n in range(8):  # many idle pulls in a short test, so the race gets its chances
        bus.consume(bus.subjects.of(JobProgress), f"probe-idle-{n}", JobProgress, handle)
    caplog.set_level(logging.DEBUG)
    await bus.start()
    try:
        await asyncio.sleep(8)
    finally:
        await bus.stop()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [f"{r.name}: {r.getMessage()}" for r in errors]


async def test_unsupported_schema_version_is_dead_lettered_with_its_reason(
    service_env, events, nats_client
):
    bus = make_bus(service_env)
    got: list[str] = []

    async def handle(event: JobProgress) -> None:
        got.append(event.job_id)

    bus.consume(bus.subjects.of(JobProgress), "probe-version", JobProgress, handle)
    await bus.start()
    try:
        body = progress("future").model_dump(mode="json") | {"schema_version": 99}
        raw = json.dumps(body).encode()
        js = nats_client.jetstream()
        await js.publish(bus.subjects.of(JobProgress), raw, headers=signed_headers(raw))
        await bus.publish(progress("today"))
        await wait_until(lambda: got == ["today"] and events.of("dlq.job.progress"))
        dead = events.of("dlq.job.progress")[0]
        assert dead.headers["Seoblog-Dlq-Reason"] == "unsupported schema_version 99"
        assert dead.headers["Seoblog-Dlq-Consumer"] == "probe-version"
        await wait_until(lambda: _acked_all(bus, "probe-version"))
        assert got == ["today"]
    finally:
        await bus.stop()


async def test_unsigned_and_badly_signed_events_are_refused_before_the_handler(
    service_env, events, nats_client
):
    bus = make_bus(service_env)
    got: list[str] = []

    async def handle(event: JobProgress) -> None:
        got.append(event.job_id)

    bus.consume(bus.subjects.of(JobProgress), "probe-signed", JobProgress, handle)
    await bus.start()
    try:
        js = nats_client.jetstream()
        subject = bus.subjects.of(JobProgress)
        unsigned = progress("outsider").model_dump_json().encode()
        await js.publish(subject, unsigned)
        forged = progress("forger").model_dump_json().encode()
        await js.publish(subject, forged, headers=signed_headers(forged, key="not-the-key"))
        await bus.publish(progress("insider"))
        await wait_until(lambda: got == ["insider"] and len(events.of("dlq.job.progress")) == 2)
        reasons = {
            json.loads(r.raw)["job_id"]: r.headers["Seoblog-Dlq-Reason"]
            for r in events.of("dlq.job.progress")
        }
        assert reasons == {"outsider": "unsigned", "forger": "bad_signature"}
        assert bus.stats["probe-signed"].rejected == 2
        await wait_until(lambda: _acked_all(bus, "probe-signed"))
        assert got == ["insider"]
    finally:
        await bus.stop()


async def test_without_a_key_events_are_not_verified_and_a_warning_says_so(
    service_env, nats_client, caplog
):
    bus = make_bus(service_env, event_key=None)
    got: list[str] = []

    async def handle(event: JobProgress) -> None:
        got.append(event.job_id)

    bus.consume(bus.subjects.of(JobProgress), "probe-open", JobProgress, handle)
    caplog.set_level(logging.WARNING, logger="seoblog.bus")
    await bus.start()
    try:
        body = progress("anyone").model_dump_json().encode()
        await nats_client.jetstream().publish(bus.subjects.of(JobProgress), body)
        await wait_until(lambda: got == ["anyone"])
    finally:
        await bus.stop()
    warnings = [r for r in caplog.records if "SEOBLOG_EVENT_KEY" in r.getMessage()]
    assert len(warnings) == 1


async def test_every_consumer_keeps_its_own_dead_letter_copy(service_env, events, nats_client):
    bus = make_bus(service_env)

    async def handle(event: JobProgress) -> None:
        raise AssertionError("never called for a malformed message")

    subject = bus.subjects.of(JobProgress)
    bus.consume(subject, "probe-first", JobProgress, handle)
    bus.consume(subject, "probe-second", JobProgress, handle)
    await bus.start()
    try:
        body = b'{"job_id": "x", "percent": 900}'
        await nats_client.jetstream().publish(subject, body, headers=signed_headers(body))

        async def copies() -> set[str]:
            info = await bus.js.stream_info(bus.subjects.dlq_stream)
            consumers = {r.headers["Seoblog-Dlq-Consumer"] for r in events.of("dlq.job.progress")}
            return consumers if info.state.messages == 2 else set()

        assert await wait_until(copies) == {"probe-first", "probe-second"}
    finally:
        await bus.stop()


async def test_batch_with_one_poison_event_handles_the_good_ones_once(service_env, events):
    bus = make_bus(service_env, max_deliver=2)
    committed: list[str] = []
    calls: list[int] = []
    gate = asyncio.Event()

    async def project(batch: list[JobProgress]) -> None:
        await gate.wait()  # let the whole backlog arrive, so it comes as one fetch
        calls.append(len(batch))
        if any(e.job_id == "poison" for e in batch):
            raise RuntimeError("cannot project this one")
        committed.extend(e.job_id for e in batch)  # one transaction per batch

    bus.consume_batch(bus.subjects.of(JobProgress), "probe-batch", JobProgress, project)
    good = [f"good-{i}" for i in range(8)]
    await bus.start()
    try:
        await bus.publish(progress("first"))
        await asyncio.sleep(0.2)
        await bus.publish(progress("poison"))
        for job_id in good:
            await bus.publish(progress(job_id))
        await asyncio.sleep(0.3)
        gate.set()
        await wait_until(lambda: events.of("dlq.job.progress"), timeout_s=15)
        await wait_until(lambda: _acked_all(bus, "probe-batch"))
        assert sorted(committed) == sorted(["first", *good])  # each exactly once
        assert max(calls) > 1, "the backlog was not handed over as a batch"
        dead = events.of("dlq.job.progress")
        assert [json.loads(d.raw)["job_id"] for d in dead] == ["poison"]
        failed = JobFailed.model_validate(events.of("job.failed", "poison")[0].data)
        assert "cannot project" in failed.message
    finally:
        gate.set()
        await bus.stop()


async def test_batch_keeps_stream_order(service_env):
    bus = make_bus(service_env)
    seen: list[int] = []

    async def project(batch: list[JobProgress]) -> None:
        seen.extend(e.percent for e in batch)

    bus.consume_batch(bus.subjects.of(JobProgress), "probe-batch-order", JobProgress, project)
    await bus.start()
    try:
        for n in range(50):
            await bus.publish(progress("ordered", n))
        await wait_until(lambda: len(seen) == 50)
        assert seen == list(range(50))
    finally:
        await bus.stop()


async def test_progress_published_without_ack_is_stored_in_the_stream(service_env):
    bus = make_bus(service_env)
    await bus.start()
    try:
        await bus.publish(progress("fire-and-forget"), ack=False)

        async def stored() -> bool:
            info = await bus.js.stream_info(bus.subjects.stream)
            return info.state.messages == 1

        await wait_until(stored)
        msg = await bus.js.get_last_msg(bus.subjects.stream, bus.subjects.of(JobProgress))
        assert json.loads(msg.data)["job_id"] == "fire-and-forget"
    finally:
        await bus.stop()


async def _acked_all(bus: Bus, durable: str) -> bool:
    info = await bus.js.consumer_info(bus.subjects.stream, durable)
    return info.num_ack_pending == 0 and info.num_pending == 0


async def test_a_deleted_consumer_is_declared_again_and_consuming_goes_on(service_env):
    bus = make_bus(service_env)
    got: list[str] = []

    async def handle(event: JobProgress) -> None:
        got.append(event.job_id)

    bus.consume(bus.subjects.of(JobProgress), "probe-lost", JobProgress, handle)
    bus.fetch_timeout_s = 0.5
    await bus.start()
    try:
        await bus.publish(progress("before"))
        await wait_until(lambda: got == ["before"])
        await bus.js.delete_consumer(bus.subjects.stream, "probe-lost")
        await bus.publish(progress("after"))
        # Declared afresh, it delivers the stream from the start (handlers are idempotent).
        await wait_until(lambda: "after" in got, timeout_s=30)
    finally:
        await bus.stop()


async def test_progress_without_ack_never_raises_when_nats_is_gone(service_env):
    bus = make_bus(service_env)
    await bus.start()
    await bus.stop()  # the connection is closed: what a NATS outage looks like to a publisher
    await bus.publish(progress("lost"), ack=False)  # dropped with a warning, no exception


async def test_a_batch_consumer_makes_no_spans(service_env):
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = settings_for(ServiceSettings, service_env, service="probe")
    bus = Bus(settings, tracer_provider=provider, stage=Stage.CRAWL)
    recording: list[bool] = []

    async def project(batch: list[JobProgress]) -> None:
        recording.append(trace.get_current_span().is_recording())

    async def handle(event: JobProgress) -> None:
        recording.append(trace.get_current_span().is_recording())

    bus.consume_batch(bus.subjects.of(JobProgress), "probe-untraced", JobProgress, project)
    bus.consume(bus.subjects.of(JobFailed), "probe-traced", JobFailed, handle)
    await bus.start()
    try:
        with provider.get_tracer("test").start_as_current_span("publisher"):
            await bus.publish(progress("traced-job"))
            await bus.publish(
                JobFailed(job_id="traced-job", stage=Stage.CRAWL, code="x", message="x")
            )
        await wait_until(lambda: len(recording) == 2)
        names = [s.name for s in exporter.get_finished_spans()]
        consumers = [n for n in names if n.endswith(" process")]
        assert consumers == [f"{bus.subjects.of(JobFailed)} process"], names  # the one-by-one
        assert sorted(recording) == [False, True]
    finally:
        await bus.stop()


async def test_unconfirmed_progress_is_coalesced_within_the_interval(service_env):
    bus = make_bus(service_env, progress_interval_s=30)
    await bus.start()
    try:

        def step(job_id: str, percent: int, message: str = "writing") -> JobProgress:
            return JobProgress(
                job_id=job_id, stage=Stage.GENERATE, percent=percent, message=message
            )

        sent = [
            step("fast", 0, ""),  # the stage's first event goes
            step("fast", 10),  # its first named phase is an update: left out
            *(step("fast", p) for p in (20, 30, 40, 50)),  # percent updates within 30 s: left out
            step("fast", 60, "revising (SEO score 62)"),  # a new phase goes
            step("fast", 100, "revising (SEO score 62)"),  # 100 % too is an update: left out
            step("other", 10),  # another job has its own window
            step("other", 0, "segment 0/4"),  # so has each phase
        ]
        for event in sent:
            await bus.publish(event, ack=False)

        async def stored() -> bool:
            info = await bus.js.stream_info(bus.subjects.stream)
            return info.state.messages >= 4

        await wait_until(stored)
        await asyncio.sleep(0.2)
        info = await bus.js.stream_info(bus.subjects.stream)
        assert info.state.messages == 4
        first = await bus.js.get_msg(bus.subjects.stream, seq=info.state.first_seq)
        assert json.loads(first.data)["percent"] == 0
        with pytest.raises(TypeError):  # the gate is for progress only; results are confirmed
            await bus.publish(
                JobFailed(job_id="x", stage=Stage.CRAWL, code="c", message="m"), ack=False
            )
    finally:
        await bus.stop()


async def test_waiting_events_join_the_first_ones_batch(service_env):
    publisher = make_bus(service_env)
    await publisher.start()
    try:
        for n in range(5):
            await publisher.publish(progress("waiting", n))
    finally:
        await publisher.stop()
    bus = make_bus(service_env)
    batches: list[list[int]] = []

    async def project(batch: list[JobProgress]) -> None:
        batches.append([e.percent for e in batch])

    bus.consume_batch(bus.subjects.of(JobProgress), "probe-joined", JobProgress, project)
    await bus.start()
    try:
        await wait_until(lambda: sum(len(b) for b in batches) == 5)
        assert batches == [[0, 1, 2, 3, 4]]  # one transaction, not one event and then four
    finally:
        await bus.stop()


async def test_a_flush_window_gathers_trickling_events_into_one_batch(service_env):
    bus = make_bus(service_env)
    batches: list[list[int]] = []
    queries_traced: list[bool] = []

    async def project(batch: list[JobProgress]) -> None:
        from opentelemetry.instrumentation.utils import is_instrumentation_enabled

        queries_traced.append(is_instrumentation_enabled())
        batches.append([e.percent for e in batch])

    bus.consume_batch(
        bus.subjects.of(JobProgress), "probe-window", JobProgress, project, flush_s=1.0
    )
    await bus.start()
    try:
        await bus.publish(progress("trickle", 0))
        await wait_until(lambda: batches)
        for n in range(1, 6):  # within the window after the first batch
            await bus.publish(progress("trickle", n))
            await asyncio.sleep(0.05)
        await wait_until(lambda: sum(len(b) for b in batches) == 6, timeout_s=5)
        assert batches == [[0], [1, 2, 3, 4, 5]]
        assert queries_traced == [False, False]  # a batch's queries make no orphan spans
    finally:
        await bus.stop()


async def test_a_durable_declared_with_an_older_filter_is_updated_in_place(service_env):
    """nats-py binds to an existing durable as it is: a consumer an older release declared on
    `job.>` would keep being sent every submitted job after its filter became `job.*`."""
    from nats.js.api import ConsumerConfig

    bus = make_bus(service_env)
    got: list[str] = []

    async def handle(event: JobProgress) -> None:
        got.append(event.job_id)

    wanted = bus.subjects.of(JobProgress)
    older = wanted.rsplit(".", 1)[0] + ".>"
    bus.consume(wanted, "probe-refiltered", JobProgress, handle)
    bus.fetch_timeout_s = 0.5
    await bus.broker.connect()
    await bus.declare_streams()
    await bus.js.add_consumer(
        bus.subjects.stream,
        ConsumerConfig(durable_name="probe-refiltered", filter_subject=older, max_deliver=2),
    )
    await bus.start()
    try:
        info = await bus.js.consumer_info(bus.subjects.stream, "probe-refiltered")
        assert info.config.filter_subject == wanted
        assert info.config.max_deliver == bus.settings.max_deliver
        await bus.publish(progress("after"))
        await wait_until(lambda: got == ["after"])
    finally:
        await bus.stop()


async def test_a_durable_declared_as_wanted_is_not_updated_again(service_env, caplog):
    async def handle(event: JobProgress) -> None:
        pass

    for _ in range(2):
        bus = make_bus(service_env)
        bus.consume(bus.subjects.of(JobProgress), "probe-same", JobProgress, handle)
        with caplog.at_level(logging.INFO, logger="seoblog.bus"):
            await bus.start()
            await bus.stop()
    assert not [r for r in caplog.records if r.getMessage() == "consumer settings updated"]
