"""Experiments: definitions, deterministic assignment of jobs to variants, the overrides each
service accepts, and the per-variant comparison (statistics and guardrails)."""

from .assignment import BUCKETS, assign, bucket
from .guardrails import Breach, breaches, step_holds
from .models import (
    DEFAULT_GUARDRAILS,
    METRICS,
    Experiment,
    ExperimentDefinition,
    Guardrail,
    Ramp,
    Targeting,
    Variant,
)
from .overrides import OVERRIDES, Override, cache_tag, service_overrides, validate_overrides
from .report import JobFigures, MetricResult, Report, VariantReport, build_report

__all__ = [
    "BUCKETS",
    "DEFAULT_GUARDRAILS",
    "METRICS",
    "OVERRIDES",
    "Breach",
    "Experiment",
    "ExperimentDefinition",
    "Guardrail",
    "JobFigures",
    "MetricResult",
    "Override",
    "Ramp",
    "Report",
    "Targeting",
    "Variant",
    "VariantReport",
    "assign",
    "breaches",
    "bucket",
    "build_report",
    "cache_tag",
    "service_overrides",
    "step_holds",
    "validate_overrides",
]
