"""/v1/experiments: the admin API of experiments: create, list, show with the comparison
report, pause, resume, set shares, promote a variant, roll back."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, status
from pydantic import BaseModel, ConfigDict, Field

from seoblog_experiments import OVERRIDES, Experiment, ExperimentDefinition, Report

from ..deps import IsAdmin
from ..errors import ApiError
from ..experiments import (
    ExperimentConflict,
    ExperimentExists,
    Experiments,
    paused,
    promoted,
    resumed,
    rolled_back,
    with_shares,
)
from ..schemas import ErrorResponse
from .jobs import _AUTH

router = APIRouter(prefix="/v1/experiments", tags=["experiments"])

_ERRORS: dict[int | str, dict[str, Any]] = _AUTH | {
    404: {"model": ErrorResponse, "description": "no such experiment"},
    409: {"model": ErrorResponse, "description": "the change does not apply in this state"},
    422: {"model": ErrorResponse},
}

CREATE_EXAMPLE: dict[str, Any] = {
    "id": "prompt-v2",
    "description": "Try the v2 post prompt on 10 % of low-priority jobs",
    "variants": [{"name": "v2", "share": 10, "overrides": {"generator.prompt_version": "post_v2"}}],
    "targeting": {"priorities": ["low"]},
    "guardrails": [
        {"metric": "failure_rate", "max_difference": 0.05, "min_sample": 20},
        {"metric": "latency_e2e_p95_s", "max_ratio": 1.5, "min_sample": 20},
        {"metric": "seo_score", "min_difference": -5, "min_sample": 20},
        {"metric": "cost_per_post_usd", "max_ratio": 1.3, "min_sample": 20},
    ],
}
RAMP_EXAMPLE: dict[str, Any] = CREATE_EXAMPLE | {
    "id": "cheaper-model",
    "description": "A cheaper generator model, ramped 1 → 10 → 50 → 100 %",
    "variants": [{"name": "mini", "overrides": {"generator.model": "gpt-4o-mini"}}],
    "targeting": {},
    "ramp": {"steps": [1, 10, 50, 100], "min_jobs": 50, "min_seconds": 1800, "auto_advance": True},
}


class ExperimentView(Experiment):
    model_config = ConfigDict(extra="ignore")

    report: Report | None = Field(
        None, description="per arm (control first) the figures, compared with the control"
    )


class ExperimentList(BaseModel):
    items: list[Experiment]


class Reason(BaseModel):
    reason: str = Field("", max_length=500, examples=["checking the cost figures"])


class Promotion(BaseModel):
    variant: str = Field(examples=["v2"])
    reason: str = Field("", max_length=500)


class Shares(BaseModel):
    shares: dict[str, float] = Field(
        description="variant → percent of matching jobs; the control keeps the rest; setting "
        "shares by hand stops the ramp",
        examples=[{"v2": 25}],
    )


class OverrideInfo(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "key": "crawler.extract_mode",
                    "service": "crawler",
                    "type": "str",
                    "description": "article extraction",
                    "choices": ["default", "precision", "recall"],
                }
            ]
        }
    )

    key: str
    service: str
    type: str
    description: str
    choices: list[str] = Field(default_factory=list)
    minimum: float | None = None
    maximum: float | None = None


async def get_experiments(request: Request) -> Experiments:
    experiments: Experiments = request.app.state.experiments
    return experiments


ExperimentsDep = Annotated[Experiments, Depends(get_experiments)]


def _not_found(experiment_id: str) -> ApiError:
    return ApiError(404, "experiment_not_found", f"No experiment with id {experiment_id!r}.")


async def _change(
    experiments: Experiments,
    experiment_id: str,
    edit: Callable[[Experiment, datetime], Experiment | None],
) -> Experiment:
    try:
        found = await experiments.change(experiment_id, edit)
    except ExperimentConflict as exc:
        raise ApiError(409, "experiment_conflict", str(exc)) from exc
    except ValueError as exc:  # the edited experiment no longer validates
        raise ApiError(422, "invalid_experiment", str(exc)) from exc
    if found is None:
        raise _not_found(experiment_id)
    return found


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Experiment,
    responses=_ERRORS | {409: {"model": ErrorResponse, "description": "the id is taken"}},
    summary="Create an experiment (it starts running)",
    description="A control and up to five variants, each a set of overrides "
    "(`GET /v1/experiments/overrides` lists the keys the services accept; any other key is a "
    "422) with a share of the jobs the targeting matches. Each job is assigned once, at "
    "submit, from a hash of its id and the experiment's id. With a `ramp`, the shares follow "
    "its steps and the monitor advances them when a step held for `min_jobs` and "
    "`min_seconds` with every guardrail holding; a step of 100 % promotes the variant. A "
    "guardrail breach rolls the experiment back (0 %). Reaches every gateway replica within "
    "5 s. Needs the `admin` scope.",
)
async def create_experiment(
    _: IsAdmin,
    experiments: ExperimentsDep,
    definition: Annotated[
        ExperimentDefinition,
        Body(
            openapi_examples={
                "prompt": {"summary": "10 % of low-priority jobs", "value": CREATE_EXAMPLE},
                "ramp": {"summary": "a ramped model change", "value": RAMP_EXAMPLE},
            }
        ),
    ],
) -> Experiment:
    try:
        return await experiments.create(definition)
    except ExperimentExists as exc:
        raise ApiError(
            409, "experiment_exists", f"An experiment with id {definition.id!r} exists."
        ) from exc


@router.get(
    "",
    response_model=ExperimentList,
    responses=_AUTH,
    summary="List experiments, newest first",
    description="Needs the `admin` scope.",
)
async def list_experiments(_: IsAdmin, experiments: ExperimentsDep) -> ExperimentList:
    return ExperimentList(items=await experiments.all())


@router.get(
    "/overrides",
    response_model=list[OverrideInfo],
    responses=_AUTH,
    summary="The overrides a variant may set",
    description="`<service>.<setting>` keys, each applied by its service from the job's spec. "
    "Needs the `admin` scope.",
)
async def list_overrides(_: IsAdmin) -> list[OverrideInfo]:
    return [
        OverrideInfo(
            key=key,
            service=key.split(".")[0],
            type=o.kind.__name__,
            description=o.description,
            choices=list(o.choices),
            minimum=o.minimum,
            maximum=o.maximum,
        )
        for key, o in OVERRIDES.items()
    ]


@router.get(
    "/{experiment_id}",
    response_model=ExperimentView,
    responses=_ERRORS,
    summary="An experiment with its comparison report",
    description="`report.variants` lists the control first, then each variant: its share, "
    "jobs, completed, failed (by code), and per metric (failure_rate, seo_score, "
    "latency_e2e_p50_s, latency_e2e_p95_s, stage latencies, tokens_per_post, "
    "cost_per_post_usd, revision_rate) its `value` and `n`; for a variant also the "
    "`difference` from the control with a 95 % interval (`ci_low`, `ci_high`), a `p_value` "
    "(Welch's t-test for means, Fisher's exact test for rates; quantiles use a bootstrap "
    "interval) and whether it is `significant`. Counts finished jobs that ran (not result-"
    "cache copies). Needs the `admin` scope.",
)
async def get_experiment(
    experiment_id: str, _: IsAdmin, experiments: ExperimentsDep
) -> ExperimentView:
    found = await experiments.get(experiment_id)
    if found is None:
        raise _not_found(experiment_id)
    report = await experiments.report(found)
    return ExperimentView.model_validate(found.model_dump() | {"report": report})


@router.post(
    "/{experiment_id}/pause",
    response_model=Experiment,
    responses=_ERRORS,
    summary="Pause: new jobs are not assigned (all run as before)",
    description="Needs the `admin` scope.",
)
async def pause_experiment(
    experiment_id: str, _: IsAdmin, experiments: ExperimentsDep, body: Reason | None = None
) -> Experiment:
    reason = body.reason if body else ""
    return await _change(experiments, experiment_id, lambda e, _: paused(e, reason))


@router.post(
    "/{experiment_id}/resume",
    response_model=Experiment,
    responses=_ERRORS,
    summary="Resume a paused or rolled-back experiment (a ramp starts at its first step)",
    description="Needs the `admin` scope.",
)
async def resume_experiment(
    experiment_id: str, _: IsAdmin, experiments: ExperimentsDep
) -> Experiment:
    return await _change(experiments, experiment_id, resumed)


@router.put(
    "/{experiment_id}/shares",
    response_model=Experiment,
    responses=_ERRORS,
    summary="Set the variants' shares (stops the ramp)",
    description="Needs the `admin` scope.",
)
async def set_shares(
    experiment_id: str, body: Shares, _: IsAdmin, experiments: ExperimentsDep
) -> Experiment:
    if any(not 0 <= s <= 100 for s in body.shares.values()):
        raise ApiError(422, "invalid_share", "A share is a percent from 0 to 100.")
    return await _change(experiments, experiment_id, lambda e, _: with_shares(e, body.shares))


@router.post(
    "/{experiment_id}/promote",
    response_model=Experiment,
    responses=_ERRORS,
    summary="Promote a variant: its overrides apply to every matching job",
    description="The experiment becomes `promoted`: every job its targeting matches gets the "
    "variant's overrides. Baking them into the services' settings (and ending the "
    "experiment) is the operator's follow-up. Needs the `admin` scope.",
)
async def promote_experiment(
    experiment_id: str, body: Promotion, _: IsAdmin, experiments: ExperimentsDep
) -> Experiment:
    reason = body.reason or "promoted by an operator"
    return await _change(experiments, experiment_id, lambda e, _: promoted(e, body.variant, reason))


@router.post(
    "/{experiment_id}/rollback",
    response_model=Experiment,
    responses=_ERRORS,
    summary="Roll back: every variant at 0 %",
    description="Needs the `admin` scope.",
)
async def rollback_experiment(
    experiment_id: str, _: IsAdmin, experiments: ExperimentsDep, body: Reason | None = None
) -> Experiment:
    reason = (body.reason if body else "") or "rolled back by an operator"

    def edit(e: Experiment, _: datetime) -> Experiment | None:
        if e.status == "rolled_back":
            return None
        if e.status == "promoted":
            return e.model_copy(update={"status": "rolled_back", "reason": reason})
        return rolled_back(e, reason)

    return await _change(experiments, experiment_id, edit)
