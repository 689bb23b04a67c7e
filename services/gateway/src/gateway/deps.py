"""FastAPI dependencies: the service parts a route works with, and who is calling."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

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

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer sk_seo_...`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the same key")


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


def caller(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the authenticated caller, holding `scope`, within its rate limit."""

    async def dependency(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
        header: Annotated[str | None, Security(_header)],
    ) -> Principal:
        key = (bearer.credentials if bearer else None) or header
        if (
            key is None
            and request.url.path.startswith("/v1/jobs")
            and (request.url.path.endswith("/events") or request.url.path.endswith("/live"))
        ):
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
