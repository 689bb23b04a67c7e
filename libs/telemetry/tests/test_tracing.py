"""The tracer provider: job ids on spans, no orphan client spans, resource and sampler from the
standard variables."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from seoblog_telemetry import bind_job, setup_tracing


def _traced(monkeypatch: pytest.MonkeyPatch, **env: str) -> tuple[object, InMemorySpanExporter]:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    telemetry = setup_tracing("crawler", install_global=False)
    exporter = InMemorySpanExporter()
    telemetry.provider.add_span_processor(SimpleSpanProcessor(exporter))
    return telemetry, exporter


def test_every_span_of_a_bound_job_carries_its_job_id(monkeypatch: pytest.MonkeyPatch) -> None:
    telemetry, exporter = _traced(monkeypatch)
    tracer = telemetry.tracer  # type: ignore[attr-defined]
    with (
        bind_job("job-42"),
        tracer.start_as_current_span("consume"),
        tracer.start_as_current_span("fetch", kind=SpanKind.CLIENT),
    ):
        pass
    with tracer.start_as_current_span("unrelated"):
        pass

    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["consume"].attributes["seoblog.job_id"] == "job-42"
    assert spans["fetch"].attributes["seoblog.job_id"] == "job-42"
    assert "seoblog.job_id" not in (spans["unrelated"].attributes or {})


def test_database_spans_that_start_their_own_trace_are_not_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    telemetry, exporter = _traced(monkeypatch)
    tracer = telemetry.tracer  # type: ignore[attr-defined]
    db = {"db.system": "postgresql"}
    with tracer.start_as_current_span("SELECT 1", kind=SpanKind.CLIENT, attributes=db):
        pass  # an idle poll or a pool reset
    with (
        tracer.start_as_current_span("POST /v1/jobs", kind=SpanKind.SERVER),
        tracer.start_as_current_span("INSERT", kind=SpanKind.CLIENT, attributes=db),
    ):
        pass

    assert sorted(s.name for s in exporter.get_finished_spans()) == ["INSERT", "POST /v1/jobs"]


def test_an_http_client_span_starting_a_trace_is_kept_so_the_server_traces_the_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    telemetry, exporter = _traced(monkeypatch)
    tracer = telemetry.tracer  # type: ignore[attr-defined]
    with tracer.start_as_current_span("POST", kind=SpanKind.CLIENT) as span:
        assert span.get_span_context().trace_flags.sampled  # what traceparent will say
    assert [s.name for s in exporter.get_finished_spans()] == ["POST"]


def test_resource_names_service_version_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    telemetry, _ = _traced(monkeypatch, SEOBLOG_ENVIRONMENT="staging")
    attributes = telemetry.provider.resource.attributes  # type: ignore[attr-defined]
    assert attributes["service.name"] == "crawler"
    assert attributes["service.version"]
    assert attributes["deployment.environment"] == "staging"
    assert attributes["deployment.environment.name"] == "staging"


def test_the_sampler_follows_the_standard_otel_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    telemetry, exporter = _traced(
        monkeypatch, OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="0"
    )
    tracer = telemetry.tracer  # type: ignore[attr-defined]
    with tracer.start_as_current_span("POST /v1/jobs", kind=SpanKind.SERVER):
        pass
    assert exporter.get_finished_spans() == ()
    assert "TraceIdRatioBased" in telemetry.provider.sampler.get_description()  # type: ignore[attr-defined]


def test_span_helper_nests_under_the_current_span_and_drops_unset_attributes() -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import StatusCode

    from seoblog_telemetry import span

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # no service built in this process yet
        provider = setup_tracing("crawler").provider
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        with bind_job("job-7"), span("crawl"), span("fetch", {"url.full": "https://a/", "x": None}):
            pass
        with pytest.raises(ValueError, match="bad page"), span("extract"):
            raise ValueError("bad page")
        spans = {s.name: s for s in exporter.get_finished_spans()}
    finally:
        exporter.shutdown()  # it stays on the process's provider: keep it from storing more
    fetch, crawl, extract = spans["fetch"], spans["crawl"], spans["extract"]
    assert fetch.parent is not None
    assert fetch.parent.span_id == crawl.context.span_id
    assert dict(fetch.attributes or {}) == {"url.full": "https://a/", "seoblog.job_id": "job-7"}
    assert extract.status.status_code == StatusCode.ERROR
    assert extract.events[0].name == "exception"


def test_nothing_is_recorded_while_nothing_receives_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    telemetry = setup_tracing("crawler", install_global=False)
    tracer = telemetry.tracer
    with bind_job("job-1"), tracer.start_as_current_span("consume") as idle:
        assert not idle.is_recording()  # no exporter: nothing to build or stamp
        context = idle.get_span_context()
        assert context.is_valid  # the trace id still reaches logs and peers
        # traceparent says what a recorded span would: a service that exports, downstream of
        # this one, still traces the job.
        assert context.trace_flags.sampled
        with tracer.start_as_current_span("child") as child:
            assert child.get_span_context().trace_id == context.trace_id

    exporter = InMemorySpanExporter()
    telemetry.provider.add_span_processor(SimpleSpanProcessor(exporter))
    with tracer.start_as_current_span("consume") as received:
        assert received.is_recording()
    assert [s.name for s in exporter.get_finished_spans()] == ["consume"]


_QUERY_SPANS = """
import asyncio, sys
import asyncpg
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from seoblog_telemetry import instrument_libraries, setup_tracing
from seoblog_telemetry.tracing import _quiet_asyncpg

telemetry = setup_tracing("probe")
instrument_libraries(telemetry)
asked = []
tracer = _quiet_asyncpg()()._tracer
real = tracer.start_as_current_span
tracer.start_as_current_span = lambda *a, **k: asked.append(a[0]) or real(*a, **k)

async def main():
    conn = await asyncpg.connect(sys.argv[1])
    await conn.fetchval("SELECT 1")  # nothing receives spans: no span is made
    assert asked == [], asked
    exporter = InMemorySpanExporter()
    telemetry.provider.add_span_processor(SimpleSpanProcessor(exporter))
    with telemetry.tracer.start_as_current_span("work"):  # an orphan query span is dropped
        await conn.fetchval("SELECT 2")
    assert asked == ["SELECT"], asked
    assert [s.name for s in exporter.get_finished_spans()] == ["SELECT", "work"]
    await conn.close()

asyncio.run(main())
"""


def test_queries_make_no_span_until_something_receives_spans(infra) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", _QUERY_SPANS, infra.database_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
