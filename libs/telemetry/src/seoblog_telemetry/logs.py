"""Logs carrying service, trace and job ids: one JSON object per line (the default, for
containers and pipes) or one readable, coloured line for a person at a terminal."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

job_id_var: ContextVar[str | None] = ContextVar("seoblog_job_id", default=None)

# Credentials in URLs (scheme://user:secret@host) and bearer tokens never reach a log line.
_URL_SECRET = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]+):[^@/\s]+@", re.I)
_BEARER = re.compile(r"(?i)(bearer\s+|api[_-]?key[\"'=:\s]+)[A-Za-z0-9._\-]{8,}")


def redact(text: str) -> str:
    """Mask passwords in URLs and API keys or bearer tokens in free text."""
    text = _URL_SECRET.sub(r"\g<scheme>\g<user>:***@", text)
    return _BEARER.sub(r"\1***", text)


_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's coloured duplicate
}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = format(span.trace_id, "032x")
            entry["span_id"] = format(span.span_id, "016x")
        if (job_id := job_id_var.get()) is not None:
            entry["job_id"] = job_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value if isinstance(value, int | float | bool) else redact(str(value))
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


_COLOURS = {
    "DEBUG": "\x1b[2m",
    "INFO": "\x1b[36m",
    "WARNING": "\x1b[33m",
    "ERROR": "\x1b[31;1m",
    "CRITICAL": "\x1b[41;97m",
}
_RESET = "\x1b[0m"
_DIM = "\x1b[2m"


class ConsoleFormatter(logging.Formatter):
    """`12:03:04.123 WARNING crawler.fetch  message  key=value job=1a2b3c4d`, for a person."""

    def __init__(self, service: str, *, colour: bool) -> None:
        super().__init__()
        self.service = service
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        level = record.levelname
        fields = [
            f"{key}={value}"
            for key, value in record.__dict__.items()
            if key not in _STANDARD_ATTRS and not key.startswith("_")
        ]
        if (job_id := job_id_var.get()) is not None:
            fields.append(f"job={job_id[:8]}")
        extra = redact("  ".join(fields))
        message = redact(record.getMessage())
        if self.colour:
            paint = _COLOURS.get(level, "")
            line = f"{_DIM}{at}{_RESET} {paint}{level:<7}{_RESET} {record.name}  {message}"
            line += f"  {_DIM}{extra}{_RESET}" if extra else ""
        else:
            line = f"{at} {level:<7} {record.name}  {message}" + (f"  {extra}" if extra else "")
        if record.exc_info:
            line += "\n" + redact(self.formatException(record.exc_info))
        return line


def log_format(stream: Any = None) -> str:
    """SEOBLOG_LOG_FORMAT: json, console, or auto (console when the stream is a terminal)."""
    wanted = os.environ.get("SEOBLOG_LOG_FORMAT", "auto").strip().lower()
    if wanted in ("json", "console"):
        return wanted
    stream = stream or sys.stderr
    return "console" if hasattr(stream, "isatty") and stream.isatty() else "json"


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every log record to stderr: JSON lines, or readable lines for a terminal
    (SEOBLOG_LOG_FORMAT; colours unless NO_COLOR is set)."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format(sys.stderr) == "console":
        colour = "NO_COLOR" not in os.environ
        handler.setFormatter(ConsoleFormatter(service, colour=colour))
    else:
        handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "httpx2", "uvicorn.access", "faststream.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextmanager
def bind_job(job_id: str | None) -> Iterator[None]:
    """Tag every log line written inside the block with the job id."""
    token = job_id_var.set(job_id)
    try:
        yield
    finally:
        job_id_var.reset(token)
