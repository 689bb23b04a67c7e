"""OpenTelemetry tracing from the standard OTEL_* variables: OTLP/HTTP export when an endpoint
is configured, in-process only otherwise."""

from __future__ import annotations

import os
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Tracer


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


def setup_tracing(service: str, *, install_global: bool = True) -> Telemetry:
    """Build the tracer provider for `service` (OTEL_SERVICE_NAME wins when set).

    The first provider built in a process becomes the global one, which auto-instrumentation
    (asyncpg, httpx, FastAPI) reports to.
    """
    name = os.environ.get("OTEL_SERVICE_NAME") or service
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    exporter = _exporter()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    if install_global and isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
    return Telemetry(service=name, provider=provider)


def instrument_libraries(telemetry: Telemetry) -> None:
    """Trace asyncpg queries and httpx requests of this process."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    asyncpg_instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    if not asyncpg_instrumentor.is_instrumented_by_opentelemetry:
        asyncpg_instrumentor.instrument(tracer_provider=telemetry.provider)
    if not HTTPXClientInstrumentor().is_instrumented_by_opentelemetry:
        HTTPXClientInstrumentor().instrument(tracer_provider=telemetry.provider)


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None
