"""The web page (submit an article, watch the job live, read and copy the post) and the event
contract for subscribers (/asyncapi.json)."""

from __future__ import annotations

import json
import secrets
from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from seoblog_contracts.asyncapi import document

router = APIRouter(include_in_schema=False)

_PAGE = Path(__file__).resolve().parent.parent / "web" / "index.html"


@cache
def _page() -> str:
    return _PAGE.read_text(encoding="utf-8")


@cache
def _asyncapi() -> bytes:
    return json.dumps(document(), ensure_ascii=False).encode()


@router.get("/asyncapi.json")
async def asyncapi() -> Response:
    """The AsyncAPI 3.0 document of every event (docs/asyncapi.yaml, as JSON); no key needed."""
    return Response(_asyncapi(), media_type="application/json")


@router.get("/", response_class=HTMLResponse)
async def page() -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    return HTMLResponse(
        _page().replace("{{nonce}}", nonce),
        headers={
            "Content-Security-Policy": (
                f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
                "connect-src 'self'; frame-src 'self'; img-src 'self' data: https:; "
                "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
            ),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache",
        },
    )
