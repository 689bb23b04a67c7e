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


def readme_sections() -> tuple[list[SettingDoc], list[SettingDoc], dict[str, list[SettingDoc]]]:
    """(shared settings, knobs every service has as <SERVICE>_X, each service's own)."""
    from .settings import ServiceSettings

    common_names = set(ServiceSettings.model_fields)
    shared: dict[str, SettingDoc] = {}
    common: dict[str, SettingDoc] = {}
    own: dict[str, list[SettingDoc]] = {}
    for service in SERVICES:
        cls = settings_class(service)
        prefix = str(cls.model_config.get("env_prefix", ""))
        for (name, _), doc in zip(
            ((n, f) for n, f in cls.model_fields.items() if n != "service"),
            describe(cls),
            strict=True,
        ):
            if doc.shared:
                shared.setdefault(doc.env, doc)
            elif name in common_names and name != "port":
                generic = doc.env.replace(prefix, "<SERVICE>_", 1)
                common.setdefault(generic, SettingDoc(generic, doc.default, doc.description, False))
            else:
                own.setdefault(service, []).append(doc)
    return list(shared.values()), list(common.values()), own
