"""A fixture web site for crawler tests: the real article pages from shared/fixtures, plus
crafted responses (status, headers, delays, streamed chunks, redirect chains) and a hit log.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import threading
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from seoblog_testing.servers import BackgroundServer, Served

DEFAULT_ROBOTS_TXT = "User-agent: *\nAllow: /\n"
_EXTRACTION = Path("fixtures") / "extraction"


def shared_dir() -> Path:
    """The shared/ folder beside the repository (or $SEOBLOG_SHARED_DIR)."""
    override = os.environ.get("SEOBLOG_SHARED_DIR")
    if override:
        return Path(override)
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "shared" / _EXTRACTION).is_dir():
            return parent / "shared"
    # Source layout: <parent>/<repo>/libs/testing/src/seoblog_testing/site.py
    return here.parents[5] / "shared"


@cache
def _ground_truth(path: Path) -> dict[str, dict[str, str]]:
    data: dict[str, dict[str, str]] = json.loads(path.read_text(encoding="utf-8"))
    return data


@dataclass(frozen=True)
class _Crafted:
    status: int
    body: bytes
    headers: dict[str, str]
    delay_s: float
    chunks: tuple[bytes, ...] | None
    chunk_delay_s: float


@dataclass
class _Hit:
    method: str
    path: str
    query: str
    headers: dict[str, str] = field(default_factory=dict)


def _as_bytes(data: bytes | str) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else data


class FixtureSite(Served):
    """A web server for crawler tests, on a real socket.

    Serves `/article/<id>` (the extraction fixtures, decompressed, as UTF-8 HTML),
    `/robots.txt` (allow all unless overridden) and whatever `route()`, `route_sequence()`,
    `route_handler()` and `redirect_chain()` register; crafted routes take precedence.
    Unknown paths are 404.
    `with FixtureSite() as site:` starts it; `reset()` clears routes and the hit log.
    """

    def __init__(self, shared: Path | str | None = None) -> None:
        self.shared_dir = Path(shared) if shared is not None else shared_dir()
        self._lock = threading.Lock()
        self._routes: dict[str, _Crafted] = {}
        self._sequences: dict[str, list[_Crafted]] = {}
        self._handlers: dict[str, Callable[[Request], Awaitable[Response]]] = {}
        self._hits: Counter[str] = Counter()
        self._log: list[_Hit] = []
        self.app = Starlette(
            routes=[
                Route(
                    "/{path:path}",
                    self._handle,
                    methods=["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"],
                )
            ]
        )
        self.server = BackgroundServer(self.app, name="fixture-site")

    # -- lifecycle

    @property
    def base_url(self) -> str:
        return self.server.url

    def url(self, path: str = "/") -> str:
        """The absolute URL of `path` on this site."""
        return self.server.url + (path if path.startswith("/") else "/" + path)

    # -- fixture articles

    @property
    def _html_dir(self) -> Path:
        return self.shared_dir / _EXTRACTION / "html"

    def article_ids(self) -> list[str]:
        """Ids of the fixture articles, sorted."""
        return sorted(p.name.removesuffix(".html.gz") for p in self._html_dir.glob("*.html.gz"))

    def article_url(self, article_id: str) -> str:
        return self.url(f"/article/{article_id}")

    def article_html(self, article_id: str) -> bytes:
        """The raw (decompressed) HTML bytes served for an article."""
        return gzip.decompress((self._html_dir / f"{article_id}.html.gz").read_bytes())

    def ground_truth(self, article_id: str) -> str:
        """The benchmark's articleBody for an article."""
        truth = _ground_truth(self.shared_dir / _EXTRACTION / "ground-truth.json")
        return truth[article_id]["articleBody"]

    def source_url(self, article_id: str) -> str:
        """The URL the article was originally published at."""
        truth = _ground_truth(self.shared_dir / _EXTRACTION / "ground-truth.json")
        return truth[article_id]["url"]

    # -- crafted responses

    def route(
        self,
        path: str,
        status: int = 200,
        body: bytes | str = b"",
        headers: Mapping[str, str] | None = None,
        delay_s: float = 0.0,
        chunks: Sequence[bytes | str] | None = None,
        chunk_delay_s: float = 0.0,
    ) -> None:
        """Serve a crafted response at `path` (with "?query" to match one query only).

        `chunks` streams the body in parts without Content-Length (for size limits);
        `delay_s` waits before the headers, `chunk_delay_s` between chunks. Without a
        Content-Type header the response is text/html; charset=utf-8.
        """
        merged = {k.lower(): v for k, v in (headers or {}).items()}
        merged.setdefault("content-type", "text/html; charset=utf-8")
        crafted = _Crafted(
            status=status,
            body=_as_bytes(body),
            headers=merged,
            delay_s=delay_s,
            chunks=tuple(_as_bytes(c) for c in chunks) if chunks is not None else None,
            chunk_delay_s=chunk_delay_s,
        )
        with self._lock:
            self._routes[path] = crafted

    def route_sequence(self, path: str, responses: Sequence[Mapping[str, Any]]) -> None:
        """Answer successive requests to `path` with successive responses (each given as
        `route()`'s keyword arguments); the last one repeats. For retries: 503, 503, 200."""
        if not responses:
            raise ValueError("a sequence needs at least one response")
        crafted = []
        for spec in responses:
            self.route(path, **spec)
            with self._lock:
                crafted.append(self._routes.pop(path))
        with self._lock:
            self._sequences[path] = crafted

    def route_handler(self, path: str, handler: Callable[[Request], Awaitable[Response]]) -> None:
        """Answer `path` with an async function of the request (conditional GETs, counting
        concurrent requests, ...). Runs on the site's own event loop."""
        with self._lock:
            self._handlers[path] = handler

    def redirect_chain(self, path: str, hops: int, final: str, status: int = 302) -> list[str]:
        """Make `path` redirect `hops` times, the last hop to `final` (a path or a URL).

        Returns the paths that redirect, in order, starting with `path`.
        """
        if hops < 1:
            raise ValueError("a redirect chain needs at least one hop")
        base = path.split("?", 1)[0].rstrip("/")
        sources = [path] + [f"{base}/_hop/{i}" for i in range(1, hops)]
        targets = [*sources[1:], final]
        for source, target in zip(sources, targets, strict=True):
            self.route(source, status=status, headers={"location": target})
        return sources

    # -- request log

    def hits(self, path: str) -> int:
        """How many requests reached `path` (query string ignored)."""
        with self._lock:
            return self._hits[path.split("?", 1)[0]]

    def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        """Logged requests (method, path, query, headers), optionally for one path."""
        with self._lock:
            log = list(self._log)
        wanted = path.split("?", 1)[0] if path is not None else None
        return [vars(hit).copy() for hit in log if wanted is None or hit.path == wanted]

    def reset(self) -> None:
        """Forget crafted routes and the request log."""
        with self._lock:
            self._routes.clear()
            self._sequences.clear()
            self._handlers.clear()
            self._hits.clear()
            self._log.clear()

    # -- serving

    async def _handle(self, request: Request) -> Response:
        path = request.url.path
        query = request.url.query
        with self._lock:
            self._hits[path] += 1
            self._log.append(_Hit(request.method, path, query, dict(request.headers)))
            crafted = self._routes.get(f"{path}?{query}") if query else None
            crafted = crafted or self._routes.get(path)
            handler = self._handlers.get(path)
            sequence = self._sequences.get(path)
            if crafted is None and sequence:
                crafted = sequence.pop(0) if len(sequence) > 1 else sequence[0]
        if handler is not None:
            return await handler(request)
        if crafted is not None:
            return await self._crafted(request, crafted)
        if path == "/robots.txt":
            return Response(DEFAULT_ROBOTS_TXT, media_type="text/plain; charset=utf-8")
        if path.startswith("/article/"):
            article_id = path.removeprefix("/article/").strip("/")
            if "/" not in article_id and (self._html_dir / f"{article_id}.html.gz").is_file():
                html = await asyncio.to_thread(self.article_html, article_id)
                return Response(html, headers={"content-type": "text/html; charset=utf-8"})
        return Response(b"not found", status_code=404, media_type="text/plain")

    async def _crafted(self, request: Request, crafted: _Crafted) -> Response:
        if crafted.delay_s > 0 and await self.server.wait_for_disconnect(request, crafted.delay_s):
            return Response(b"", status_code=499)  # the client left; nobody reads this
        if crafted.chunks is None:
            return Response(crafted.body, status_code=crafted.status, headers=crafted.headers)

        async def stream() -> AsyncIterator[bytes]:
            for i, chunk in enumerate(crafted.chunks or ()):
                if i and crafted.chunk_delay_s > 0:
                    await asyncio.sleep(crafted.chunk_delay_s)
                yield chunk

        return StreamingResponse(stream(), status_code=crafted.status, headers=crafted.headers)
