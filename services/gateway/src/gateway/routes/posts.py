"""/v1/posts: read a finished post as JSON, markdown or HTML."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response

from ..deps import PartsDep
from ..errors import ApiError
from ..schemas import ErrorResponse, Post

router = APIRouter(prefix="/v1/posts", tags=["posts"])

Format = Literal["json", "markdown", "html"]


def negotiate(fmt: Format | None, accept: str | None) -> Format:
    if fmt is not None:
        return fmt
    accept = (accept or "").lower()
    if "text/markdown" in accept:
        return "markdown"
    if "text/html" in accept:
        return "html"
    return "json"


@router.get(
    "/{post_id}",
    response_model=Post,
    responses={
        200: {"content": {"text/markdown": {}, "text/html": {}}},
        404: {"model": ErrorResponse},
    },
    summary="Get a post",
    description="JSON by default; `?format=markdown|html` or an Accept header of "
    "text/markdown or text/html gives the post in that form.",
)
async def get_post(
    post_id: str,
    parts: PartsDep,
    format: Annotated[Format | None, Query()] = None,
    accept: Annotated[str | None, Header()] = None,
) -> Response | Post:
    event = await parts.store.post(post_id)
    if event is None:
        raise ApiError(404, "post_not_found", f"No post with id {post_id!r}.")
    match negotiate(format, accept):
        case "markdown":
            return Response(
                f"# {event.title}\n\n{event.markdown}\n", media_type="text/markdown; charset=utf-8"
            )
        case "html":
            return Response(event.html, media_type="text/html; charset=utf-8")
    return Post.from_event(event)
