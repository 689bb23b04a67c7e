"""/v1/posts: read a finished post as JSON, markdown or HTML; list and search posts."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime
from html import escape
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from ..deps import CanRead, PartsDep
from ..errors import ApiError
from ..schemas import POST_EXAMPLE, ErrorResponse, Post, PostList, PostListItem, PostSource
from ..sources import Sources
from .jobs import _AUTH, next_cursor, parse_cursor

router = APIRouter(prefix="/v1/posts", tags=["posts"])

Format = Literal["json", "markdown", "html"]


async def get_sources(request: Request) -> Sources:
    sources: Sources = request.app.state.sources
    return sources


SourcesDep = Annotated[Sources, Depends(get_sources)]

_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")


def html_document(title: str, language: str, body: str) -> str:
    """The post as a whole HTML document whose `lang` is the language it is written in (an
    offline post keeps its article's language, whatever was requested)."""
    lang = language if _LANGUAGE_TAG.match(language) else "und"
    return (
        f'<!doctype html>\n<html lang="{lang}">\n<head><meta charset="utf-8">'
        f"<title>{escape(title)}</title></head>\n<body>\n{body}\n</body>\n</html>\n"
    )


# A post opened in a browser runs nothing and loads nothing from elsewhere: its HTML is
# sanitised twice, and this policy is the third wall (inline styles of table cells only,
# images of this origin, and a sandbox: no scripts, forms, plugins or top navigation).
HTML_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; sandbox",
    "Referrer-Policy": "no-referrer",
}


def negotiate(fmt: Format | None, accept: str | None) -> Format:
    if fmt is not None:
        return fmt
    accept = (accept or "").lower()
    if "text/markdown" in accept:
        return "markdown"
    if "text/html" in accept:
        return "html"
    return "json"


def _offset_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")


def _parse_offset(cursor: str | None) -> int:
    if cursor is None:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        offset = json.loads(raw)["offset"]
        if not isinstance(offset, int) or not 0 <= offset <= 100_000:
            raise ValueError(offset)
        return offset
    except (ValueError, TypeError, KeyError) as exc:
        raise ApiError(422, "invalid_cursor", "cursor is not one this API gave out.") from exc


@router.get(
    "",
    response_model=PostList,
    responses=_AUTH | {422: {"model": ErrorResponse}},
    summary="List and search posts",
    description="Newest first; with `q`, a full-text search (PostgreSQL, web-search syntax: "
    '`europa "water plumes" -jupiter`) over title, keywords, description and body, best match '
    "first. Filters: `language`, `created_after`, `created_before`. Pass `next_cursor` back "
    "as `cursor`. Needs the `jobs:read` scope.",
)
async def list_posts(
    who: CanRead,
    parts: PartsDep,
    q: Annotated[str | None, Query(min_length=1, max_length=200, examples=["remote work"])] = None,
    language: Annotated[
        str | None, Query(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$", examples=["ko"])
    ] = None,
    created_after: Annotated[datetime | None, Query(examples=["2026-01-01T00:00:00Z"])] = None,
    created_before: Annotated[datetime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=300)] = None,
) -> PostList:
    offset = _parse_offset(cursor) if q else 0
    after = None if q else parse_cursor(cursor)
    found = await parts.store.posts(
        owner=who.owner_filter,
        query=q,
        language=language,
        created_after=created_after,
        created_before=created_before,
        after=after,
        offset=offset,
        limit=limit + 1,
    )
    page = found[:limit]
    more = len(found) > limit
    cursor_out = None
    if more and q:
        cursor_out = _offset_cursor(offset + limit)
    elif more:
        last, _, created = page[-1]
        cursor_out = next_cursor(created, last.post_id)
    return PostList(
        data=[PostListItem.from_event(event, rank) for event, rank, _ in page],
        next_cursor=cursor_out,
    )


@router.get(
    "/{post_id}",
    response_model=Post,
    responses=_AUTH
    | {
        200: {
            "content": {
                "application/json": {"example": POST_EXAMPLE},
                "text/markdown": {"example": f"# {POST_EXAMPLE['title']}\n\n..."},
                "text/html": {"example": POST_EXAMPLE["html"]},
            }
        },
        404: {"model": ErrorResponse},
    },
    summary="Get a post",
    description="JSON by default; `?format=markdown|html` or an Accept header of "
    "text/markdown or text/html gives the post in that form. Needs the `jobs:read` scope.",
)
async def get_post(
    post_id: str,
    who: CanRead,
    parts: PartsDep,
    format: Annotated[Format | None, Query()] = None,
    accept: Annotated[str | None, Header()] = None,
) -> Response | Post:
    exists, owner = await parts.store.post_owner(post_id)
    event = await parts.store.post(post_id) if exists and who.may_see(owner) else None
    if event is None:
        raise ApiError(404, "post_not_found", f"No post with id {post_id!r}.")
    match negotiate(format, accept):
        case "markdown":
            return Response(
                f"# {event.title}\n\n{event.markdown}\n", media_type="text/markdown; charset=utf-8"
            )
        case "html":
            return Response(
                html_document(event.title, event.language, event.html),
                media_type="text/html; charset=utf-8",
                headers=HTML_HEADERS,
            )
    return Post.from_event(event)


@router.get(
    "/{post_id}/source",
    response_model=PostSource,
    responses=_AUTH | {404: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
    summary="Get the source article of a post",
    description="The article the post was written from, as the crawler stored it: title and "
    "extracted plain text, the job's own crawl result (`exact: true`), else the latest stored "
    "copy of its URL. Read from the crawler on request and kept for "
    "`GATEWAY_SOURCE_CACHE_TTL_S`. 404 "
    "`post_not_found` (no such post, or another key's), 404 `source_not_found` (the crawler "
    "keeps no copy), 503 `source_unavailable` (the crawler did not answer). Needs the "
    "`jobs:read` scope.",
)
async def get_post_source(
    post_id: str, who: CanRead, parts: PartsDep, sources: SourcesDep
) -> PostSource:
    exists, owner = await parts.store.post_owner(post_id)
    event = await parts.store.post(post_id) if exists and who.may_see(owner) else None
    if event is None:
        raise ApiError(404, "post_not_found", f"No post with id {post_id!r}.")
    page = await sources.page(event.source_url, event.job_id)
    return PostSource(post_id=post_id, **page)
