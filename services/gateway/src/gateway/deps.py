"""FastAPI dependencies: the service parts a route works with."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from seoblog_runtime import Parts

from .settings import Settings
from .store import PgJobStore


def get_parts(request: Request) -> Parts[PgJobStore]:
    parts: Parts[PgJobStore] = request.app.state.parts
    return parts


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


PartsDep = Annotated[Parts[PgJobStore], Depends(get_parts)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
