"""Tracing, metrics and JSON logs for every seoblog service, configured from the standard
OTEL_* variables."""

from .logs import bind_job, configure_logging, job_id_var
from .tracing import Telemetry, current_trace_id, instrument_libraries, setup_tracing

__all__ = [
    "Telemetry",
    "bind_job",
    "configure_logging",
    "current_trace_id",
    "instrument_libraries",
    "job_id_var",
    "setup_tracing",
]
