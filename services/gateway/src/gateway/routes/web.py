"""The web app (write a post from an article, follow jobs live, read a post with its full SEO
report, search the library, compare experiments) and the event contract for subscribers
(/asyncapi.json). The app is three static files in gateway/web, served with a strict CSP."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response

from seoblog_contracts.asyncapi import document

router = APIRouter(include_in_schema=False)

_WEB = Path(__file__).resolve().parent.parent / "web"
_ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "post.css": "text/css; charset=utf-8",
}
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "frame-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def _file(name: str) -> bytes:
    return (_WEB / name).read_bytes()


@cache
def _asyncapi() -> bytes:
    return json.dumps(document(), ensure_ascii=False).encode()


@router.get("/asyncapi.json")
async def asyncapi() -> Response:
    """The AsyncAPI 3.0 document of every event (docs/asyncapi.yaml, as JSON); no key needed."""
    return Response(_asyncapi(), media_type="application/json")


@router.get("/")
async def page() -> Response:
    return Response(_file("index.html"), media_type="text/html; charset=utf-8", headers=_HEADERS)


@router.get("/web/{name}")
async def asset(name: str) -> Response:
    media_type = _ASSETS.get(name)
    if media_type is None:
        return Response(status_code=404, headers=_HEADERS)
    return Response(_file(name), media_type=media_type, headers=_HEADERS)
