"""/v1/keys and /v1/webhooks/secret: API key management, for admins."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Request, status

from ..auth import Authenticator, hash_key, hint_of, new_key
from ..deps import IsAdmin, PartsDep, WebhooksDep
from ..errors import ApiError
from ..schemas import ApiKey, ErrorResponse, KeyList, KeyRequest, NewApiKey, WebhookSecret
from .jobs import _AUTH

router = APIRouter(tags=["admin"])
_ERRORS: dict[int | str, dict[str, Any]] = _AUTH | {422: {"model": ErrorResponse}}


@router.post(
    "/v1/keys",
    status_code=status.HTTP_201_CREATED,
    response_model=NewApiKey,
    responses=_ERRORS,
    summary="Create an API key",
    description="The key is in this answer only; the gateway keeps its SHA-256. Scopes: "
    "`jobs:write` (submit, cancel), `jobs:read` (jobs, posts, live), `admin` (everything, "
    "keys). Needs the `admin` scope.",
)
async def create_key(body: KeyRequest, _: IsAdmin, parts: PartsDep) -> NewApiKey:
    key = new_key()
    row = await parts.store.create_key(
        "key_" + secrets.token_hex(8),
        body.name,
        hash_key(key),
        hint_of(key),
        sorted(set(body.scopes)),
        body.rate_per_s,
        body.burst,
    )
    return NewApiKey(key=key, **ApiKey.from_row(row).model_dump())


@router.get(
    "/v1/keys",
    response_model=KeyList,
    responses=_ERRORS,
    summary="List API keys (never the keys themselves)",
    description="Needs the `admin` scope.",
)
async def list_keys(_: IsAdmin, parts: PartsDep) -> KeyList:
    return KeyList(data=[ApiKey.from_row(r) for r in await parts.store.keys()])


@router.delete(
    "/v1/keys/{key_id}",
    response_model=ApiKey,
    responses=_ERRORS | {404: {"model": ErrorResponse}},
    summary="Revoke an API key",
    description="At once on every replica (a NATS notice; within 5 s should it be lost). Open "
    "SSE streams and WebSockets of the key end within GATEWAY_LIVE_RECHECK_S (SSE with an "
    "`error` event `key_revoked`, WebSockets with close code 4401). Needs the `admin` scope.",
)
async def revoke_key(key_id: str, _: IsAdmin, parts: PartsDep, request: Request) -> ApiKey:
    row = await parts.store.revoke_key(key_id)
    if row is None:
        raise ApiError(404, "key_not_found", f"No API key with id {key_id!r}.")
    auth: Authenticator = request.app.state.auth
    await auth.revoked(key_id)
    return ApiKey.from_row(row)


@router.get(
    "/v1/webhooks/secret",
    response_model=WebhookSecret,
    responses=_ERRORS,
    summary="The secret webhooks are signed with",
    description='`Seoblog-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`. '
    "Needs the `admin` scope.",
)
async def webhook_secret(_: IsAdmin, webhooks: WebhooksDep) -> WebhookSecret:
    return WebhookSecret(secret=webhooks.secret)
