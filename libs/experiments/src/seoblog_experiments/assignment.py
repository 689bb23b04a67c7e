"""Deterministic assignment: hash(experiment id, job id) picks a bucket in [0, 10000); the
variants take consecutive ranges of buckets by their share, the control the rest."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from seoblog_contracts import Assignment, Priority

from .models import Experiment

BUCKETS = 10_000


def bucket(experiment_id: str, job_id: str) -> int:
    """The job's bucket in one experiment: uniform, stable, independent across experiments."""
    digest = hashlib.sha256(f"{experiment_id}\x00{job_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def assign(
    experiments: Sequence[Experiment],
    job_id: str,
    *,
    priority: Priority | str,
    target_language: str,
) -> list[Assignment]:
    """The job's variants in every running (or promoted) experiment that targets it."""
    found = []
    for experiment in experiments:
        if experiment.status not in ("running", "promoted"):
            continue
        if not experiment.targeting.matches(priority, target_language):
            continue
        if experiment.status == "promoted":
            winner = experiment.variant(experiment.promoted_variant or "")
            if winner is not None:
                found.append(
                    Assignment(
                        experiment_id=experiment.id,
                        variant=winner.name,
                        overrides=winner.overrides,
                    )
                )
            continue
        point, edge = bucket(experiment.id, job_id), 0
        chosen = None
        for variant in experiment.variants:
            edge += round(variant.share * BUCKETS / 100)
            if point < edge:
                chosen = variant
                break
        if chosen is None:
            found.append(Assignment(experiment_id=experiment.id, variant=experiment.control))
        else:
            found.append(
                Assignment(
                    experiment_id=experiment.id, variant=chosen.name, overrides=chosen.overrides
                )
            )
    return found
