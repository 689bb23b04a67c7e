"""Test helpers for seoblog: a pytest plugin with real infrastructure, the fake LLM server,
the fixture web site, an OTLP collector and event recording."""

from .plugin import settings_for, unique_name, wait_until

__all__ = ["settings_for", "unique_name", "wait_until"]
