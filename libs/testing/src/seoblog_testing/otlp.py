"""An in-test OTLP/HTTP trace receiver standing in for Jaeger's collector: it decodes exported
spans into plain dicts that tests can wait on and assert against.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from seoblog_testing.servers import BackgroundServer, Served

Span = dict[str, Any]
SpanPredicate = Callable[[list[Span]], bool]
_PROTOBUF = "application/x-protobuf"


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind)


def _attributes(pairs: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    pair: KeyValue
    for pair in pairs:
        result[pair.key] = _value(pair.value)
    return result


def decode_spans(request: ExportTraceServiceRequest) -> list[Span]:
    """Flatten an export request into span dicts (ids as lower-case hex)."""
    spans: list[Span] = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        service = str(resource.get("service.name", ""))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    {
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex() or None,
                        "name": span.name,
                        "service": service,
                        "attributes": _attributes(span.attributes),
                        "start_ns": span.start_time_unix_nano,
                        "end_ns": span.end_time_unix_nano,
                        "kind": span.kind,
                        "status_code": span.status.code,
                        "scope": scope_spans.scope.name,
                        "resource": resource,
                    }
                )
    return spans


def _trace_hex(trace_id: str | int) -> str:
    return format(trace_id, "032x") if isinstance(trace_id, int) else trace_id.lower()


class OtlpCollector(Served):
    """Receives OTLP/HTTP traces on a real socket and keeps the spans.

    Point an exporter at `endpoint` (OTEL_EXPORTER_OTLP_ENDPOINT) or at
    `endpoint + "/v1/traces"` (OTLPSpanExporter(endpoint=...)). Metrics and logs are
    accepted and dropped so services exporting them do not log errors.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[Span] = []
        self.app = Starlette(
            routes=[
                Route("/v1/traces", self._traces, methods=["POST"]),
                Route("/v1/metrics", self._discard, methods=["POST"]),
                Route("/v1/logs", self._discard, methods=["POST"]),
            ]
        )
        self.server = BackgroundServer(self.app, name="otlp-collector")

    # -- lifecycle

    @property
    def endpoint(self) -> str:
        """Base URL for OTEL_EXPORTER_OTLP_ENDPOINT, such as http://127.0.0.1:41234."""
        return self.server.url

    # -- queries

    def spans(self) -> list[Span]:
        """All spans received so far, in arrival order."""
        with self._lock:
            return list(self._spans)

    def spans_for_trace(self, trace_id: str | int) -> list[Span]:
        wanted = _trace_hex(trace_id)
        return [s for s in self.spans() if s["trace_id"] == wanted]

    def services_in_trace(self, trace_id: str | int) -> set[str]:
        return {s["service"] for s in self.spans_for_trace(trace_id)}

    def clear(self) -> None:
        with self._lock:
            self._spans.clear()

    def wait_for(
        self, predicate: SpanPredicate, timeout_s: float = 10.0, interval_s: float = 0.02
    ) -> list[Span]:
        """Poll until `predicate(spans)` holds; return the spans, or raise TimeoutError."""
        deadline = time.monotonic() + timeout_s
        while True:
            spans = self.spans()
            if predicate(spans):
                return spans
            if time.monotonic() >= deadline:
                raise TimeoutError(self._timeout_message(spans, timeout_s))
            time.sleep(interval_s)

    async def wait_for_async(
        self, predicate: SpanPredicate, timeout_s: float = 10.0, interval_s: float = 0.02
    ) -> list[Span]:
        """`wait_for` for async tests: sleeps without blocking the test's event loop."""
        deadline = time.monotonic() + timeout_s
        while True:
            spans = self.spans()
            if predicate(spans):
                return spans
            if time.monotonic() >= deadline:
                raise TimeoutError(self._timeout_message(spans, timeout_s))
            await asyncio.sleep(interval_s)

    @staticmethod
    def _timeout_message(spans: list[Span], timeout_s: float) -> str:
        seen = ", ".join(f"{s['service']}:{s['name']}" for s in spans[-20:]) or "none"
        return f"spans did not match within {timeout_s}s; last seen: {seen}"

    # -- serving

    async def _body(self, request: Request) -> bytes:
        body = await request.body()
        encoding = request.headers.get("content-encoding", "").lower()
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
        return body

    async def _traces(self, request: Request) -> Response:
        content_type = request.headers.get("content-type", _PROTOBUF).split(";")[0].strip()
        if content_type != _PROTOBUF:
            # OTLP/JSON encodes ids as hex, which protobuf's JSON parser would misread.
            return Response(b"only application/x-protobuf", status_code=415)
        try:
            export = ExportTraceServiceRequest()
            export.ParseFromString(await self._body(request))
        except (DecodeError, OSError, ValueError, zlib.error) as exc:
            return Response(f"bad OTLP payload: {exc}", status_code=400, media_type="text/plain")
        spans = decode_spans(export)
        with self._lock:
            self._spans.extend(spans)
        answer = ExportTraceServiceResponse().SerializeToString()
        return Response(answer, media_type=_PROTOBUF)

    async def _discard(self, request: Request) -> Response:
        await request.body()
        return Response(b"", media_type=_PROTOBUF)
