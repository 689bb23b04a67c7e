"""Test helpers for seoblog: a pytest plugin with real infrastructure, the fake LLM server,
the fixture web site, an OTLP collector and event recording."""

from .events import signed_headers
from .plugin import (
    drop_namespace,
    env_for,
    fake_llm_settings,
    running_app,
    settings_for,
    unique_name,
    wait_until,
)

__all__ = [
    "drop_namespace",
    "env_for",
    "fake_llm_settings",
    "running_app",
    "settings_for",
    "signed_headers",
    "unique_name",
    "wait_until",
]
