"""Every error the gateway answers is JSON with a stable code: {"error": {code, message}}."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from seoblog_runtime.store import DATABASE_DOWN, database_down

log = logging.getLogger("gateway.errors")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **headers: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def validation_details(errors: Any) -> list[dict[str, Any]]:
    """Pydantic's errors as {loc, msg, type, message}, `message` naming the field first."""
    details = []
    for e in errors:
        loc = list(e.get("loc", ()))
        where = ".".join(str(p) for p in loc if p != "body") or "body"
        msg = e.get("msg", "")
        details.append(
            {"loc": loc, "msg": msg, "type": e.get("type", ""), "message": f"{where}: {msg}"}
        )
    return details or [
        {"loc": [], "msg": "invalid request", "type": "", "message": "invalid request"}
    ]


def _public(detail: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in detail.items() if k != "message"}


_HTTP_CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


RETRY_AFTER_S = "2"


def unavailable(exc: BaseException) -> bool:
    """A dependency is down (rather than our code being wrong): 503, not 500."""
    return database_down(exc)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, headers=exc.headers or None)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = validation_details(exc.errors())
        message = details[0]["message"]
        return error_response(422, "invalid_request", message, [_public(d) for d in details])

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return error_response(exc.status_code, code, str(exc.detail))

    async def dependency_down(_: Request, exc: Exception) -> JSONResponse:
        if not unavailable(exc):
            raise exc  # a real bug: the 500 handler below logs it
        return _database_unavailable(exc)

    # Handled where the route runs (not re-raised to the server, unlike the catch-all).
    for kind in (*DATABASE_DOWN, asyncpg.InterfaceError):
        app.add_exception_handler(kind, dependency_down)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        if unavailable(exc):  # raised outside the routes (a middleware)
            return _database_unavailable(exc)
        log.exception("unhandled error")
        return error_response(500, "internal_error", "Something went wrong on our side.")


def _database_unavailable(exc: Exception) -> JSONResponse:
    log.warning("database unavailable", extra={"error": f"{type(exc).__name__}: {exc}"[:300]})
    return error_response(
        503,
        "database_unavailable",
        "The database is unavailable; please retry.",
        headers={"Retry-After": RETRY_AFTER_S},
    )
