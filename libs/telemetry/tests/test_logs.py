"""Log lines: JSON for machines, one readable line for people, secrets masked in both."""

from __future__ import annotations

import io
import json
import logging

import pytest

from seoblog_telemetry import bind_job
from seoblog_telemetry.logs import ConsoleFormatter, JsonFormatter, log_format


def _record(msg: str, **extra: object) -> logging.LogRecord:
    record = logging.makeLogRecord({"name": "crawler.fetch", "levelname": "WARNING", "msg": msg})
    record.__dict__.update(extra)
    return record


def test_console_lines_are_one_readable_line_with_fields_and_the_job() -> None:
    formatter = ConsoleFormatter("crawler", colour=False)
    with bind_job("1a2b3c4d-5e6f"):
        line = formatter.format(_record("host paused", host="example.org", delay_s=2.5))
    assert "\n" not in line
    assert "WARNING crawler.fetch  host paused  host=example.org  delay_s=2.5  job=1a2b3c4d" in line


def test_console_lines_never_show_a_password() -> None:
    line = ConsoleFormatter("gateway", colour=True).format(
        _record("connecting", url="postgresql://u:hunter2@db/x")
    )
    assert "hunter2" not in line
    assert "\x1b[" in line  # coloured


def test_json_stays_the_default_when_the_stream_is_not_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SEOBLOG_LOG_FORMAT", raising=False)
    assert log_format(io.StringIO()) == "json"
    monkeypatch.setenv("SEOBLOG_LOG_FORMAT", "console")
    assert log_format(io.StringIO()) == "console"
    entry = json.loads(JsonFormatter("crawler").format(_record("x")))
    assert entry["service"] == "crawler"
