"""Pure ASGI middleware: request bodies over a size limit refused before they are read whole,
`?api_key=` moved out of the URL, NUL characters refused, and the headers every answer gets."""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send)
            return
        seen = 0
        refused = False

        async def limited() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    refused = True
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            if refused:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {
                "error": {
                    "code": "body_too_large",
                    "message": f"Request bodies are limited to {self.max_bytes} bytes.",
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class KeyFromQuery:
    """Browsers cannot send headers with EventSource or WebSocket, so the live routes take
    `?api_key=`. It is moved into an X-API-Key header before anything (tracing, logs,
    routes) sees the URL, so keys never land in a trace or a log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key_out_of_query(scope)
        await self.app(scope, receive, send)


def key_out_of_query(scope: MutableMapping[str, Any]) -> None:
    """KeyFromQuery's move, in place: also run where FastAPI's own tracing first sees a
    request, before any middleware."""
    query = scope.get("query_string") or b""
    path = scope.get("path", "") if scope.get("type") in ("http", "websocket") else ""
    live = path.endswith("/events") or path == "/v1/jobs/live"
    if live and b"api_key=" in query:
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
        keys = [v for k, v in pairs if k == "api_key"]
        rest = [(k, v) for k, v in pairs if k != "api_key"]
        scope["query_string"] = urlencode(rest).encode("latin-1")
        headers = [(k, v) for k, v in scope.get("headers", []) if k != b"x-api-key"]
        if keys and keys[0]:
            headers.append((b"x-api-key", keys[0].encode()))
        scope["headers"] = headers


class RejectNul:
    """A NUL character (%00) in the path or query can never match anything we store, and
    PostgreSQL refuses it in text: answer 422 before any route sees it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            raw = (scope.get("raw_path") or scope.get("path", "").encode()) + (
                scope.get("query_string") or b""
            )
            if b"%00" in raw or b"\x00" in raw or "\x00" in scope.get("path", ""):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 4422})
                    return
                await _json(send, 422, "invalid_request", "NUL characters are not allowed.")
                return
        await self.app(scope, receive, send)


async def _json(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


_NOSNIFF = (b"x-content-type-options", b"nosniff")


class RateLimitHeaders:
    """Adds the RateLimit-* headers the auth dependency left in the request state, and
    `X-Content-Type-Options: nosniff` to every answer (one wrapper for both: no extra layer)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                if _NOSNIFF[0] not in present:  # a route may have set it already
                    headers.append(_NOSNIFF)
                extra = (scope.get("state") or {}).get("ratelimit")
                if extra:
                    headers += [
                        (k.lower().encode(), v.encode())
                        for k, v in extra.items()
                        if k.lower().encode() not in present
                    ]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
