"""Every alert rule through the real monitor: real events on the real bus (or real service
processes for the two rules read from /metrics), the rule fires once, announces itself as
seo.alert.fired (and to the alert webhooks), and resolves once. The evaluation runs on a
clock the test moves, so windows pass without waiting."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from nats.js.api import AckPolicy, ConsumerConfig
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from monitor import alert_rules as rules
from monitor.webhooks import AlertWebhooks
from seoblog_contracts import AlertFired, Event, utcnow
from seoblog_runtime import Bus, ServiceSettings
from seoblog_testing import settings_for, signed_headers, wait_until
from seoblog_testing.processes import ServiceProcess, Stack, free_port
from seoblog_testing.servers import BackgroundServer

MONITOR = "monitor-observe_event"


@pytest.fixture
async def probe(service_env: dict[str, str]) -> AsyncIterator[Bus]:
    bus = Bus(settings_for(ServiceSettings, service_env, service="probe"))
    await bus.start()
    yield bus
    await bus.stop()


class Receiver:
    """An outside webhook receiver: records every POST and answers the next of `statuses`
    (204 once they are used up)."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])

    async def _hook(self, request: Request) -> Response:
        self.posts.append((dict(request.headers), await request.body()))
        return Response(status_code=self.statuses.pop(0) if self.statuses else 204)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    found = Receiver()
    with BackgroundServer(found.app, name="alert-receiver") as server:
        yield found, f"{server.url}/hook"


async def publish(bus: Bus, *events: Event) -> None:
    for event in events:
        await bus.publish(event)


async def consumed(app: Any) -> None:
    """Wait until the monitor has handled everything published so far."""

    async def done() -> bool:
        lag = (await app.state.evaluator.consumer_lag()).get(MONITOR)
        return lag is not None and (lag.num_pending, lag.num_ack_pending) == (0, 0)

    await wait_until(done)


async def evaluate_at(app: Any, at: datetime) -> None:
    app.state.evaluator.clock = lambda: at
    await app.state.evaluator.evaluate()


def announced(events: Any, kind: str, alert: str) -> list[dict[str, Any]]:
    return [e.data for e in events.of(f"alert.{kind}") if e.data["alert"] == alert]


async def fired_once(events: Any, alert: str) -> AlertFired:
    await wait_until(lambda: announced(events, "fired", alert))
    found = announced(events, "fired", alert)
    assert len(found) == 1
    return AlertFired.model_validate(found[0])


async def resolved_once(events: Any, alert: str) -> dict[str, Any]:
    await wait_until(lambda: announced(events, "resolved", alert))
    found = announced(events, "resolved", alert)
    assert len(found) == 1
    assert len(announced(events, "fired", alert)) == 1
    return found[0]


async def active(client: httpx.AsyncClient) -> list[str]:
    return [a["alert"] for a in (await client.get("/v1/summary")).json()["alerts"]]


async def test_jobs_stuck_fires_for_a_job_without_progress_and_resolves_when_it_ends(
    start_monitor, make, probe, events
):
    now = utcnow()
    async with start_monitor(stuck_after_s=1800) as (app, client):
        await publish(
            probe,
            make.submitted_at("slow", now - timedelta(hours=1)),
            make.submitted_at("fresh", now - timedelta(minutes=5)),
        )
        await consumed(app)
        await evaluate_at(app, now)
        fired = await fired_once(events, rules.JOBS_STUCK)
        assert (fired.severity, fired.value) == ("critical", 1.0)
        assert fired.summary == "1 unfinished job entered no new state for 1800 s: slow"
        await evaluate_at(app, now + timedelta(seconds=1))  # still stuck: no second alert
        assert await active(client) == [rules.JOBS_STUCK]

        await publish(probe, make.failed_at("slow", now))
        await consumed(app)
        await evaluate_at(app, now + timedelta(seconds=2))
        await resolved_once(events, rules.JOBS_STUCK)
        assert await active(client) == []


async def test_consumer_lag_growing_fires_when_a_backlog_grows_and_resolves_when_it_drains(
    start_monitor, make, probe, events, nats_client
):
    js = nats_client.jetstream()
    subject = probe.subjects.of(make.failed_at("x", utcnow()))
    await js.add_consumer(
        probe.subjects.stream,
        ConsumerConfig(
            durable_name="probe-slow", ack_policy=AckPolicy.EXPLICIT, filter_subject=subject
        ),
    )
    t0 = utcnow()
    async with start_monitor(lag_threshold=2, lag_window_s=60) as (app, client):
        await publish(probe, *(make.failed_at(f"j{i}", t0) for i in range(3)))
        await consumed(app)
        await evaluate_at(app, t0)  # 3 behind, but no history to say it grows
        await publish(probe, make.failed_at("j3", t0))
        await consumed(app)
        await evaluate_at(app, t0 + timedelta(seconds=30))  # nothing 60 s old yet
        assert announced(events, "fired", rules.CONSUMER_LAG_GROWING) == []

        await evaluate_at(app, t0 + timedelta(seconds=61))  # 4 now, 3 a minute ago
        fired = await fired_once(events, rules.CONSUMER_LAG_GROWING)
        assert (fired.severity, fired.value) == ("warning", 4.0)
        assert fired.summary.startswith("probe-slow more than 2 messages behind")
        await evaluate_at(app, t0 + timedelta(seconds=125))  # holding at 4: kept, not again
        assert rules.CONSUMER_LAG_GROWING in await active(client)

        sub = await js.pull_subscribe_bind("probe-slow", stream=probe.subjects.stream)
        for msg in await sub.fetch(4, timeout=5):
            await msg.ack()
        await evaluate_at(app, t0 + timedelta(seconds=190))
        await resolved_once(events, rules.CONSUMER_LAG_GROWING)


async def test_dlq_growing_fires_when_a_message_is_dead_lettered_and_resolves_a_window_later(
    start_monitor, probe, events, nats_client
):
    js = nats_client.jetstream()
    t0 = utcnow()
    async with start_monitor(dlq_window_s=60) as (app, client):
        await evaluate_at(app, t0)
        body = b'{"type": "job.submitted", "job_id": "broken"}'  # no spec: malformed
        await js.publish(
            probe.subjects.root + ".job.submitted",
            body,
            headers=signed_headers(body),
            stream=probe.subjects.stream,
        )

        async def dead_lettered() -> bool:
            info = await js.stream_info(probe.subjects.dlq_stream)
            return (info.state.last_seq or 0) >= 1

        await wait_until(dead_lettered)
        await evaluate_at(app, t0 + timedelta(seconds=61))
        fired = await fired_once(events, rules.DLQ_GROWING)
        assert (fired.value, fired.summary) == (1.0, "1 message dead-lettered in the last 60 s")
        await evaluate_at(app, t0 + timedelta(seconds=100))  # the same one: nothing new
        assert rules.DLQ_GROWING in await active(client)

        await evaluate_at(app, t0 + timedelta(seconds=130))  # a window with none
        await resolved_once(events, rules.DLQ_GROWING)


async def test_llm_cost_over_budget_counts_each_job_once_fires_resolves_and_calls_webhooks(
    start_monitor, make, probe, events, receiver
):
    hooks, url = receiver
    now = utcnow()
    async with start_monitor(
        llm_cost_budget_usd=1.0,
        llm_cost_window_s=3600,
        alert_webhooks=[url],
        alert_webhook_allowed_networks=["127.0.0.0/8"],  # the receiver is on loopback
        alert_webhook_secret="hook-secret",
    ) as (app, _):
        # Job a's translation (0.4) is part of its whole cost (1.5): 1.5 counts, not 1.9. The
        # post comes before the translation for job b: still its whole cost, 0.25, once.
        await publish(
            probe,
            make.translated_at("a", now, cost_usd=0.4),
            make.generated_at("a", now, cost_usd=1.5),
            make.generated_at("b", now, cost_usd=0.25),
            make.translated_at("b", now, cost_usd=0.1),
            make.translated_at("c", now, cost_usd=0.05),  # a job that has not finished yet
        )
        await consumed(app)
        await evaluate_at(app, now)
        fired = await fired_once(events, rules.LLM_COST_OVER_BUDGET)
        assert fired.value == pytest.approx(1.8)
        assert fired.summary == "LLM spend 1.80 USD in the last 3600 s, budget 1.00 USD"
        assert (await app.state.parts.store.llm_cost(3600)) == pytest.approx(1.8)

        await evaluate_at(app, now + timedelta(hours=2))  # the spend has left the window
        resolved = await resolved_once(events, rules.LLM_COST_OVER_BUDGET)

        await wait_until(lambda: len(hooks.posts) == 2)
        for (headers, body), sent in zip(hooks.posts, (fired, resolved), strict=True):
            payload = json.loads(body)
            sent_id = sent.event_id if isinstance(sent, AlertFired) else sent["event_id"]
            assert payload["event_id"] == headers["seoblog-delivery"] == sent_id
            stamp = headers["seoblog-timestamp"]
            mac = hmac.new(b"hook-secret", f"{stamp}.".encode() + body, hashlib.sha256)
            assert headers["seoblog-signature"] == f"t={stamp},v1={mac.hexdigest()}"
        assert [json.loads(b)["type"] for _, b in hooks.posts] == ["alert.fired", "alert.resolved"]


async def test_end_to_end_latency_high_fires_above_the_objective_and_resolves_when_it_ends(
    start_monitor, make, probe, events
):
    now = utcnow()
    async with start_monitor(e2e_p95_objective_s=60, e2e_window_s=900) as (app, client):
        await publish(
            probe,
            make.submitted_at("quick", now - timedelta(seconds=20)),
            make.generated_at("quick", now),
        )
        await consumed(app)
        await evaluate_at(app, now)  # 20 s: within the objective
        assert announced(events, "fired", rules.END_TO_END_LATENCY_HIGH) == []

        await publish(
            probe,
            make.submitted_at("slow", now - timedelta(minutes=10)),
            make.generated_at("slow", now),
        )
        await consumed(app)
        await evaluate_at(app, now + timedelta(seconds=1))
        fired = await fired_once(events, rules.END_TO_END_LATENCY_HIGH)
        assert fired.value == pytest.approx(0.95 * 600 + 0.05 * 20, rel=0.02)

        await evaluate_at(app, now + timedelta(hours=1))  # no job completed in the window
        await resolved_once(events, rules.END_TO_END_LATENCY_HIGH)
        assert await active(client) == []


def start_service(name: str, env: dict[str, str]) -> ServiceProcess:
    process = ServiceProcess(name, free_port(), env)
    process.start()
    Stack({name: process}).wait_ready(60)
    return process


async def test_service_down_fires_when_a_service_stops_answering_and_resolves_when_it_is_back(
    start_monitor, service_env, events
):
    crawler = await asyncio.to_thread(start_service, "crawler", service_env)
    try:
        now = utcnow()
        async with start_monitor(services={"crawler": crawler.url}, service_down_after_s=30) as (
            app,
            client,
        ):
            spans = InMemorySpanExporter()
            provider = trace.get_tracer_provider()
            assert isinstance(provider, TracerProvider)
            provider.add_span_processor(SimpleSpanProcessor(spans))
            await evaluate_at(app, now)
            assert app.state.evaluator.scraper.targets["crawler"].last_ok == now
            # A scrape is polling: it starts no trace (an idle monitor makes no spans).
            assert [
                s.name
                for s in spans.get_finished_spans()
                if s.kind is SpanKind.CLIENT and "GET" in s.name
            ] == []

            await asyncio.to_thread(crawler.kill)
            await evaluate_at(app, now + timedelta(seconds=10))  # not yet 30 s without one
            assert announced(events, "fired", rules.SERVICE_DOWN) == []
            await evaluate_at(app, now + timedelta(seconds=31))
            fired = await fired_once(events, rules.SERVICE_DOWN)
            assert fired.summary == "crawler not scraped for 30 s"

            await asyncio.to_thread(crawler.start)
            await asyncio.to_thread(Stack({"crawler": crawler}).wait_ready, 60)
            await evaluate_at(app, now + timedelta(seconds=60))
            await resolved_once(events, rules.SERVICE_DOWN)
            assert await active(client) == []
    finally:
        await asyncio.to_thread(crawler.stop)


async def test_llm_breaker_open_fires_while_a_services_breaker_is_open_and_resolves_when_closed(
    start_monitor, service_env, make, probe, events, fake_llm
):
    env = service_env | {
        "LLM_BASE_URL": fake_llm.base_url,
        "LLM_API_KEY": fake_llm.api_key,
        "LLM_MODEL": "fake-llm",
        "LLM_MAX_RETRIES": "0",
        "LLM_BREAKER_FAILURES": "1",
        "LLM_BREAKER_RESET_S": "2",
        "LLM_BREAKER_WAIT_S": "60",
    }
    fake_llm.down = True
    generator = await asyncio.to_thread(start_service, "generator", env)
    try:
        async with start_monitor(services={"generator": generator.url}) as (app, client):
            await evaluate_at(app, utcnow())  # closed: nothing
            assert app.state.evaluator.scraper.breakers() == {"generator": 0.0}

            await publish(probe, make.translated_at("needs-llm", utcnow()))
            await wait_until(lambda: fake_llm.refused >= 1, timeout_s=30)

            async def breaker_seen_open() -> bool:
                await evaluate_at(app, utcnow())
                return bool(announced(events, "fired", rules.LLM_BREAKER_OPEN))

            await wait_until(breaker_seen_open, timeout_s=10, interval_s=0.2)
            fired = await fired_once(events, rules.LLM_BREAKER_OPEN)
            assert fired.summary == "LLM circuit breaker not closed in generator"

            fake_llm.down = False  # the provider is back: the waiting call probes and closes

            async def breaker_seen_closed() -> bool:
                await evaluate_at(app, utcnow())
                return bool(announced(events, "resolved", rules.LLM_BREAKER_OPEN))

            await wait_until(breaker_seen_closed, timeout_s=30, interval_s=0.2)
            await resolved_once(events, rules.LLM_BREAKER_OPEN)
            assert await active(client) == []
    finally:
        fake_llm.down = False
        await asyncio.to_thread(generator.stop)


async def test_an_alert_webhook_that_fails_is_retried_under_the_same_delivery_id(receiver):
    hooks, url = receiver
    hooks.statuses = [500]
    webhooks = AlertWebhooks([url], None, backoff_s=(0.05,), allowed_networks=["127.0.0.0/8"])
    await webhooks.start()
    try:
        event = AlertFired(alert=rules.SERVICE_DOWN, severity="critical", summary="s")
        webhooks.send(event)
        await wait_until(lambda: len(hooks.posts) == 2)
        assert [h["seoblog-delivery"] for h, _ in hooks.posts] == [event.event_id] * 2
        assert "seoblog-signature" not in hooks.posts[0][0]  # no secret: unsigned
    finally:
        await webhooks.stop()
