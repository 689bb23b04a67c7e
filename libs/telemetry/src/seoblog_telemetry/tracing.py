"""OpenTelemetry tracing from the standard OTEL_* variables: OTLP/HTTP export when an endpoint
is configured, in-process only otherwise; spans carry the job they work for, and background
database chatter that belongs to no request or job is not traced."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    Decision,
    Sampler,
    SamplingResult,
    _get_from_env_or_default,
)
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    Tracer,
)
from opentelemetry.util.types import Attributes, AttributeValue

from .logs import job_id_var

JOB_ID_ATTRIBUTE = "seoblog.job_id"


@dataclass
class Telemetry:
    """One service's tracer provider; shut it down to flush spans on exit."""

    service: str
    provider: TracerProvider

    @property
    def tracer(self) -> Tracer:
        return self.provider.get_tracer(f"seoblog.{self.service}")

    def shutdown(self) -> None:
        self.provider.force_flush(timeout_millis=5000)
        self.provider.shutdown()


def _exporter() -> SpanExporter | None:
    if os.environ.get("OTEL_TRACES_EXPORTER", "otlp") == "none":
        return None
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    # The exporter reads OTEL_EXPORTER_OTLP_* itself and appends /v1/traces to the base URL.
    return OTLPSpanExporter()


class JobSpanProcessor(SpanProcessor):
    """Stamps `seoblog.job_id` on every span started while a job is bound (see bind_job), so
    a job's spans can be found by its id in any service."""

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        job_id = job_id_var.get()
        if job_id:
            span.set_attribute(JOB_ID_ATTRIBUTE, job_id)


class _Provider(TracerProvider):
    """A tracer provider that knows whether anything receives its spans: a processor other
    than the job stamp (an exporter, a test's in-memory one). Its tracers build no span while
    nothing does (see _QuietTracer)."""

    receivers = 0

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        super().add_span_processor(span_processor)
        if not isinstance(span_processor, JobSpanProcessor):
            self.receivers += 1

    def get_tracer(self, *args: Any, **kwargs: Any) -> Tracer:
        tracer = super().get_tracer(*args, **kwargs)
        if type(tracer) is SdkTracer:
            tracer.__class__ = _QuietTracer
            tracer._seoblog_provider = self  # type: ignore[attr-defined]
        return tracer


class _QuietTracer(SdkTracer):
    """While its provider has no receiver (no OTLP endpoint, as in a local run), a span is
    a non-recording one carrying the context a recorded one would: the trace id, and the
    sampler's decision as its flag, so logs and `traceparent` are unchanged and a service
    that does export downstream still traces the job. Building, stamping and ending spans
    nobody reads was about 5 % of each service's CPU."""

    _seoblog_provider: _Provider

    def start_span(
        self,
        name: str,
        context: otel_context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        if self._seoblog_provider.receivers:
            return super().start_span(
                name,
                context,
                kind,
                attributes,
                links,
                start_time,
                record_exception,
                set_status_on_exception,
            )
        parent = trace.get_current_span(context).get_span_context()
        trace_id = parent.trace_id if parent.is_valid else self.id_generator.generate_trace_id()
        decided = self.sampler.should_sample(context, trace_id, name, kind, attributes, links)
        sampled = decided.decision in (Decision.RECORD_AND_SAMPLE,)
        flags = TraceFlags(TraceFlags.SAMPLED if sampled else 0)
        return NonRecordingSpan(
            SpanContext(
                trace_id,
                self.id_generator.generate_span_id(),
                is_remote=False,
                trace_flags=flags,
                trace_state=decided.trace_state or parent.trace_state,
            )
        )


class NoOrphanClientSpans(Sampler):
    """Drops database client spans that start a trace of their own: they come from idle
    polling, pool resets and readiness pings, not from a request or a job. (HTTP client spans
    are left alone: their decision travels in `traceparent`, and a dropped one would tell the
    server not to trace the request.) Every other decision is the configured sampler's
    (OTEL_TRACES_SAMPLER, default parent-based always-on; e.g. parentbased_traceidratio with
    OTEL_TRACES_SAMPLER_ARG=0.1)."""

    def __init__(self, inner: Sampler) -> None:
        self.inner = inner

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        orphan = not trace.get_current_span(parent_context).get_span_context().is_valid
        if orphan and kind == SpanKind.CLIENT and _is_database(attributes):
            return SamplingResult(Decision.DROP)
        return self.inner.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"NoOrphanClientSpans{{{self.inner.get_description()}}}"


def _is_database(attributes: Attributes) -> bool:
    if not attributes:
        return False
    return "db.system" in attributes or "db.system.name" in attributes


def _version(service: str) -> str:
    for dist in (service, f"seoblog-{service}", "seoblog-runtime"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "0.0.0"


def resource_for(service: str) -> Resource:
    """service.name, service.version and deployment.environment (SEOBLOG_ENVIRONMENT, default
    "local"); OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME still win, as the spec says."""
    environment = os.environ.get("SEOBLOG_ENVIRONMENT", "local")
    return Resource.create(
        {
            "service.name": service,
            "service.version": _version(service),
            "deployment.environment": environment,
            "deployment.environment.name": environment,
        }
    )


def setup_tracing(service: str, *, install_global: bool = True) -> Telemetry:
    """Build the tracer provider for `service` (OTEL_SERVICE_NAME wins when set).

    The first provider built in a process becomes the global one, which auto-instrumentation
    (asyncpg, httpx, FastAPI) reports to. Instrumentations use the current (stable) HTTP
    semantic conventions unless OTEL_SEMCONV_STABILITY_OPT_IN says otherwise.
    """
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    name = os.environ.get("OTEL_SERVICE_NAME") or service
    provider = _Provider(
        resource=resource_for(name), sampler=NoOrphanClientSpans(_get_from_env_or_default())
    )
    provider.add_span_processor(JobSpanProcessor())
    exporter = _exporter()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    if install_global and isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
    return Telemetry(service=name, provider=provider)


@cache
def _quiet_asyncpg() -> type[Any]:
    """asyncpg's instrumentation, passing a query straight through while nothing receives
    spans: the library builds each query's attributes and a span before it asks (20-30 µs a
    query, about 25 queries a job). One class per process (instrumentors are singletons)."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    class QuietAsyncPG(AsyncPGInstrumentor):
        _instance = None  # its own singleton, not the parent's (BaseInstrumentor.__new__)
        receivers: Callable[[], int] = staticmethod(lambda: 1)

        async def _do_execute(self, func: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            if not self.receivers():
                return await func(*args, **kwargs)
            return await super()._do_execute(func, instance, args, kwargs)  # type: ignore[no-untyped-call]

        async def _do_cursor_execute(self, func: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            if not self.receivers():
                return await func(*args, **kwargs)
            return await super()._do_cursor_execute(func, instance, args, kwargs)  # type: ignore[no-untyped-call]

        async def _do_prepared_execute(
            self, func: Any, instance: Any, args: Any, kwargs: Any
        ) -> Any:
            if not self.receivers():
                return await func(*args, **kwargs)
            return await super()._do_prepared_execute(func, instance, args, kwargs)  # type: ignore[no-untyped-call]

    return QuietAsyncPG


def instrument_libraries(telemetry: Telemetry) -> None:
    """Trace asyncpg queries and httpx requests of this process."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    plain = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    quiet = _quiet_asyncpg()()
    if not (plain.is_instrumented_by_opentelemetry or quiet.is_instrumented_by_opentelemetry):
        provider = telemetry.provider
        if isinstance(provider, _Provider):
            quiet.receivers = lambda: provider.receivers
        quiet.instrument(tracer_provider=provider)
    if not HTTPXClientInstrumentor().is_instrumented_by_opentelemetry:
        HTTPXClientInstrumentor().instrument(tracer_provider=telemetry.provider)


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


# A proxy until the service's provider is installed, then that provider's tracer.
_TRACER = trace.get_tracer("seoblog")


@contextmanager
def span(
    name: str,
    attributes: Mapping[str, AttributeValue | None] | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
) -> Iterator[trace.Span]:
    """A named span around one step of a job (`with span("extract", {"url.full": url}):`),
    a child of the current span, reported to the global tracer provider. Attributes that are
    None are left out; an exception escaping the block is recorded and marks the span failed.
    """
    kept = {k: v for k, v in attributes.items() if v is not None} if attributes else None
    with _TRACER.start_as_current_span(name, kind=kind, attributes=kept) as current:
        yield current
