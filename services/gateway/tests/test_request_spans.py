"""A request makes one server span (current HTTP conventions), and an API key given as
`?api_key=` on a live route never lands in it."""

from __future__ import annotations

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from .conftest import ADMIN_KEY, gateway_settings, in_process


async def test_one_server_span_per_request_and_no_key_from_the_query_in_it(service_env):
    async with in_process(gateway_settings(service_env)) as (app, client):
        exporter = InMemorySpanExporter()
        app.state.parts.telemetry.provider.add_span_processor(SimpleSpanProcessor(exporter))
        exporter.clear()
        missing = await client.get("/v1/jobs/nope/events", params={"api_key": ADMIN_KEY})
        assert missing.status_code == 404  # the key from the query authenticated the caller
        spans = [s for s in exporter.get_finished_spans() if s.instrumentation_scope]
        servers = [s for s in spans if s.kind == SpanKind.SERVER]
        assert len(servers) == 1, [s.name for s in spans]
        server = servers[0]
        assert server.attributes is not None
        assert server.attributes["http.request.method"] == "GET"
        assert "http.method" not in server.attributes
        # No per-dependency or per-endpoint spans from the web framework: one span a request.
        framework = [s.name for s in spans if s.instrumentation_scope.name == "fastapi"]
        assert framework == [server.name], framework
        for span in spans:
            for value in (span.attributes or {}).values():
                assert ADMIN_KEY not in str(value), (span.name, value)
