"""Every setting of every service as (environment name, default, description): the one source
for the README's settings table and .env.example, checked by a test."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

SERVICES = ("gateway", "crawler", "translator", "generator", "monitor")


@dataclass(frozen=True)
class SettingDoc:
    env: str
    default: str
    description: str
    shared: bool


def settings_class(service: str) -> type[BaseSettings]:
    cls: type[BaseSettings] = importlib.import_module(f"{service}.settings").Settings
    return cls


def describe(cls: type[BaseSettings]) -> Iterator[SettingDoc]:
    prefix = str(cls.model_config.get("env_prefix", ""))
    for name, field in cls.model_fields.items():
        if name == "service":
            continue
        alias = field.validation_alias
        shared = isinstance(alias, AliasChoices)
        env = (
            str(alias.choices[0]) if isinstance(alias, AliasChoices) else f"{prefix}{name}".upper()
        )
        default = field.get_default(call_default_factory=True)
        if isinstance(default, list):
            shown = json.dumps(default)
        elif default is None:
            shown = ""
        else:
            shown = str(default)
        yield SettingDoc(env, shown, field.description or "", shared)


def all_settings() -> list[SettingDoc]:
    """Shared settings once, then each service's own, in service order."""
    seen: dict[str, SettingDoc] = {}
    for service in SERVICES:
        for doc in describe(settings_class(service)):
            seen.setdefault(doc.env, doc)
    return list(seen.values())
