"""The OTLP collector, fed by the real opentelemetry-sdk exporter."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import format_trace_id, set_span_in_context

from seoblog_testing.otlp import OtlpCollector


@pytest.fixture
def collector() -> Iterator[OtlpCollector]:
    with OtlpCollector() as server:
        yield server


def _provider(
    collector: OtlpCollector, service: str, compression: Compression | None = None
) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(endpoint=collector.endpoint + "/v1/traces", compression=compression)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@pytest.mark.parametrize("compression", [None, Compression.Gzip])
def test_nested_spans_arrive_with_parents_service_and_attributes(
    collector: OtlpCollector, compression: Compression | None
) -> None:
    provider = _provider(collector, "crawler", compression)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("crawl_page") as root:
        root.set_attribute("url.full", "https://example.com/a")
        with tracer.start_as_current_span("fetch") as child:
            child.set_attribute("http.response.status_code", 200)
            child.set_attribute("retries", [1, 2])
    assert provider.force_flush()
    trace_id = format_trace_id(root.get_span_context().trace_id)

    spans = collector.wait_for(lambda spans: len(spans) >= 2, timeout_s=5)

    by_name = {span["name"]: span for span in spans}
    assert by_name["crawl_page"]["parent_span_id"] is None
    assert by_name["fetch"]["parent_span_id"] == by_name["crawl_page"]["span_id"]
    assert by_name["crawl_page"]["attributes"] == {"url.full": "https://example.com/a"}
    assert by_name["fetch"]["attributes"]["http.response.status_code"] == 200
    assert by_name["fetch"]["attributes"]["retries"] == [1, 2]
    assert by_name["crawl_page"]["start_ns"] <= by_name["fetch"]["start_ns"]
    assert by_name["fetch"]["end_ns"] <= by_name["crawl_page"]["end_ns"]
    assert collector.services_in_trace(trace_id) == {"crawler"}
    assert len(collector.spans_for_trace(root.get_span_context().trace_id)) == 2
    provider.shutdown()


async def test_one_trace_across_two_services_is_joined(collector: OtlpCollector) -> None:
    gateway = _provider(collector, "gateway")
    crawler = _provider(collector, "crawler")
    with gateway.get_tracer("test").start_as_current_span("POST /jobs") as incoming:
        context = set_span_in_context(incoming)
        with crawler.get_tracer("test").start_as_current_span("crawl_page", context=context):
            pass
    trace_id = format_trace_id(incoming.get_span_context().trace_id)

    await collector.wait_for_async(
        lambda spans: len([s for s in spans if s["trace_id"] == trace_id]) == 2, timeout_s=5
    )

    assert collector.services_in_trace(trace_id) == {"gateway", "crawler"}
    gateway.shutdown()
    crawler.shutdown()


def test_wait_for_gives_up_at_the_deadline(collector: OtlpCollector) -> None:
    with pytest.raises(TimeoutError):
        collector.wait_for(lambda spans: bool(spans), timeout_s=0.1)


def test_garbage_payload_is_rejected_and_metrics_are_accepted(collector: OtlpCollector) -> None:
    headers = {"Content-Type": "application/x-protobuf"}
    bad = httpx.post(collector.endpoint + "/v1/traces", content=b"\xff\xff\xff", headers=headers)
    metrics = httpx.post(collector.endpoint + "/v1/metrics", content=b"", headers=headers)
    assert bad.status_code == 400
    assert metrics.status_code == 200
    assert collector.spans() == []
