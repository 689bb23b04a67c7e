"""Tracing, metrics and JSON logs for every seoblog service, configured from the standard
OTEL_* variables."""

from .logs import bind_job, configure_logging, job_id_var
from .metrics import HttpMetrics, register_process_collectors
from .tracing import Telemetry, current_trace_id, instrument_libraries, setup_tracing, span

__all__ = [
    "HttpMetrics",
    "Telemetry",
    "bind_job",
    "configure_logging",
    "current_trace_id",
    "instrument_libraries",
    "job_id_var",
    "register_process_collectors",
    "setup_tracing",
    "span",
]
