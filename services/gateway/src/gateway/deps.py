"""FastAPI dependencies: the service parts a route works with, and who is calling."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.security import APIKeyHeader, HTTPBearer

from seoblog_runtime import Parts

from .auth import Authenticator, Principal
from .errors import ApiError
from .settings import Settings
from .snapshots import JobCache
from .store import PgJobStore

if TYPE_CHECKING:
    from .experiments import Experiments
    from .live import LiveHub
    from .relay import Relay
    from .webhooks import Webhooks


@dataclass(frozen=True)
class Gateway:
    """Everything a route may need, in one dependency (each dependency costs per request)."""

    parts: Parts[PgJobStore]
    settings: Settings
    jobs: JobCache
    hub: LiveHub
    webhooks: Webhooks
    relay: Relay
    experiments: Experiments | None = None  # assigns submitted jobs to experiment variants


# Dependencies are coroutines: FastAPI runs plain functions in a thread pool, per request.
async def get_parts(request: Request) -> Parts[PgJobStore]:
    parts: Parts[PgJobStore] = request.app.state.parts
    return parts


async def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_jobs(request: Request) -> JobCache:
    jobs: JobCache = request.app.state.jobs
    return jobs


async def get_hub(request: Request) -> LiveHub:
    hub: LiveHub = request.app.state.hub
    return hub


async def get_webhooks(request: Request) -> Webhooks:
    webhooks: Webhooks = request.app.state.webhooks
    return webhooks


AppDep = Annotated[Gateway, Depends(get_gateway)]
PartsDep = Annotated[Parts[PgJobStore], Depends(get_parts)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
HubDep = Annotated["LiveHub", Depends(get_hub)]
JobsDep = Annotated[JobCache, Depends(get_jobs)]
WebhooksDep = Annotated["Webhooks", Depends(get_webhooks)]

# How a key is sent, for the OpenAPI document only (see document_keys): the `caller`
# dependency reads the headers itself, since every dependency FastAPI resolves costs per
# request (these two were a fifth of the submit route's dependency resolution).
_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer sk_seo_...`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the same key")
KEY_SCHEMES: dict[str, Any] = {
    "HTTPBearer": jsonable_encoder(_bearer.model, by_alias=True, exclude_none=True),
    "APIKeyHeader": jsonable_encoder(_header.model, by_alias=True, exclude_none=True),
}
KEY_REQUIRED: list[dict[str, list[str]]] = [{"HTTPBearer": []}, {"APIKeyHeader": []}]


def document_keys(app: FastAPI) -> None:
    """Every operation that answers 401 takes a key: the OpenAPI document says so, with the
    two ways to send it (what `Security(HTTPBearer)` and `Security(APIKeyHeader)` parameters
    would have written)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = build()
            spec.setdefault("components", {}).setdefault("securitySchemes", {}).update(KEY_SCHEMES)
            for operations in spec.get("paths", {}).values():
                for operation in operations.values():
                    if isinstance(operation, dict) and "401" in operation.get("responses", {}):
                        operation["security"] = KEY_REQUIRED
        return app.openapi_schema or build()

    app.openapi = openapi  # type: ignore[method-assign]


def key_of(request: Request) -> str | None:
    """The API key a request names: Bearer, X-API-Key, or (live routes) `?api_key=`."""
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    key = (credentials.strip() if scheme.lower() == "bearer" else "") or request.headers.get(
        "x-api-key"
    )
    return key or request.query_params.get("api_key") or None


def client_of(request: Request) -> str | None:
    """The client's address (the proxy's, behind one that uvicorn does not trust)."""
    return request.client.host if request.client else None


def _header_key(request: Request) -> str | None:
    """The key of `Authorization: Bearer` (as HTTPBearer reads it), else of X-API-Key."""
    headers = request.headers
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        credentials = credentials.strip()
        if scheme and credentials and scheme.lower() == "bearer":
            return credentials
    return headers.get("x-api-key") or None


def caller(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the authenticated caller, holding `scope`, within its rate limit."""

    async def dependency(request: Request) -> Principal:
        key = _header_key(request)
        if key is None:
            path = request.url.path
            if path.startswith("/v1/jobs") and (path.endswith("/events") or path.endswith("/live")):
                # Browsers cannot set headers on EventSource or WebSocket: a query parameter.
                key = request.query_params.get("api_key")
        auth: Authenticator = request.app.state.auth
        who = await auth.principal(key, client_of(request))
        if not who.can(scope):
            raise ApiError(403, "insufficient_scope", f"This API key lacks the {scope!r} scope.")
        request.state.ratelimit = await auth.limit(who)
        return who

    return dependency


CanWrite = Annotated[Principal, Depends(caller("jobs:write"))]
CanRead = Annotated[Principal, Depends(caller("jobs:read"))]
IsAdmin = Annotated[Principal, Depends(caller("admin"))]
