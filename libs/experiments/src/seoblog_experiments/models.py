"""What an experiment is: a control and variants (overrides with a traffic share), who it
targets, its ramp schedule and its guardrails."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from seoblog_contracts import Priority
from seoblog_contracts.events import ExperimentStatus, OverrideValue

from .overrides import validate_overrides

Name = str
_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"

Metric = Literal[
    "failure_rate",
    "seo_score",
    "latency_e2e_p50_s",
    "latency_e2e_p95_s",
    "latency_crawl_p50_s",
    "latency_translate_p50_s",
    "latency_generate_p50_s",
    "latency_crawl_p95_s",
    "latency_translate_p95_s",
    "latency_generate_p95_s",
    "tokens_per_post",
    "cost_per_post_usd",
    "revision_rate",
]
METRICS: tuple[str, ...] = Metric.__args__  # type: ignore[attr-defined]


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME, examples=["prompt-v2"])
    share: float = Field(0.0, ge=0, le=100, description="percent of matching jobs (a ramp sets it)")
    overrides: dict[str, OverrideValue] = Field(
        default_factory=dict,
        max_length=20,
        description="`<service>.<setting>` → value; see GET /v1/experiments/overrides",
        examples=[{"generator.prompt_version": "post_v2"}],
    )

    @field_validator("overrides")
    @classmethod
    def _known_overrides(cls, value: dict[str, OverrideValue]) -> dict[str, OverrideValue]:
        problems = validate_overrides(value)
        if problems:
            raise ValueError("; ".join(problems))
        return value


class Targeting(BaseModel):
    """Which jobs the experiment applies to; empty lists match every job."""

    model_config = ConfigDict(extra="forbid")

    priorities: list[Priority] = Field(default_factory=list, examples=[["low"]])
    languages: list[str] = Field(default_factory=list, max_length=50, examples=[["de", "fr"]])

    def matches(self, priority: Priority | str, target_language: str) -> bool:
        if self.priorities and Priority(priority) not in self.priorities:
            return False
        return not self.languages or target_language.lower() in {
            lang.lower() for lang in self.languages
        }


class Ramp(BaseModel):
    """Share of matching jobs in the variants, step by step; a step is held for at least
    `min_jobs` finished variant jobs and `min_seconds`, with every guardrail holding. With
    `auto_advance`, the monitor moves it on; the step of 100 % promotes the variant."""

    model_config = ConfigDict(extra="forbid")

    steps: list[float] = Field(
        default_factory=lambda: [1.0, 10.0, 50.0, 100.0], min_length=1, max_length=10
    )
    min_jobs: int = Field(20, ge=1)
    min_seconds: float = Field(300.0, ge=0)
    auto_advance: bool = True

    @field_validator("steps")
    @classmethod
    def _rising(cls, value: list[float]) -> list[float]:
        if any(not 0 < s <= 100 for s in value):
            raise ValueError("every step is a percent in (0, 100]")
        if any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError("steps must rise")
        return value


class Guardrail(BaseModel):
    """A rule comparing a variant with the control, evaluated once both have `min_sample`
    finished jobs. Set one bound: `max_difference` (variant - control may not exceed it),
    `min_difference` (may not fall below it), `max_ratio` / `min_ratio` (variant / control)."""

    model_config = ConfigDict(extra="forbid")

    metric: Metric
    max_difference: float | None = None
    min_difference: float | None = None
    max_ratio: float | None = Field(None, gt=0)
    min_ratio: float | None = Field(None, gt=0)
    min_sample: int = Field(20, ge=1)

    @model_validator(mode="after")
    def _one_bound(self) -> Guardrail:
        bounds = [self.max_difference, self.min_difference, self.max_ratio, self.min_ratio]
        if sum(b is not None for b in bounds) != 1:
            raise ValueError(
                "set exactly one of max_difference, min_difference, max_ratio, min_ratio"
            )
        return self

    def describe(self) -> str:
        if self.max_difference is not None:
            return f"{self.metric} above control + {self.max_difference:g}"
        if self.min_difference is not None:
            return f"{self.metric} below control - {-self.min_difference:g}"
        if self.max_ratio is not None:
            return f"{self.metric} above {self.max_ratio:g} x control"
        return f"{self.metric} below {self.min_ratio:g} x control"


DEFAULT_GUARDRAILS: tuple[Guardrail, ...] = (
    Guardrail(metric="failure_rate", max_difference=0.05),
    Guardrail(metric="latency_e2e_p95_s", max_ratio=1.5),
    Guardrail(metric="seo_score", min_difference=-5),
    Guardrail(metric="cost_per_post_usd", max_ratio=1.3),
)


class ExperimentDefinition(BaseModel):
    """What an operator writes to create an experiment."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=_NAME, examples=["prompt-v2"])
    description: str = Field("", max_length=2000)
    control: str = Field("control", pattern=_NAME)
    variants: list[Variant] = Field(min_length=1, max_length=5)
    targeting: Targeting = Field(default_factory=Targeting)
    ramp: Ramp | None = Field(None, description="none: the variants keep their shares")
    guardrails: list[Guardrail] = Field(
        default_factory=lambda: list(DEFAULT_GUARDRAILS), max_length=20
    )

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentDefinition:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names) or self.control in names:
            raise ValueError("variant names must differ from each other and from the control")
        if self.ramp is None and sum(v.share for v in self.variants) > 100:
            raise ValueError("the variants' shares add up to more than 100 %")
        return self


class Experiment(ExperimentDefinition):
    """An experiment as stored: the definition with its state."""

    model_config = ConfigDict(extra="ignore")

    status: ExperimentStatus = "running"
    step: int | None = Field(None, description="index of the ramp step now in force")
    step_started_at: datetime | None = None
    started_at: datetime | None = Field(
        None,
        description="when it last started running (created or resumed): the guardrails "
        "judge the jobs submitted since",
    )
    promoted_variant: str | None = None
    reason: str = Field("", description="why it was last paused, rolled back or promoted")
    version: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def variant(self, name: str) -> Variant | None:
        return next((v for v in self.variants if v.name == name), None)

    def arms(self) -> list[str]:
        """The control, then the variants."""
        return [self.control, *(v.name for v in self.variants)]


def ramp_shares(experiment: ExperimentDefinition, step: int) -> list[float]:
    """Each variant's share at a ramp step: the step's percent split evenly."""
    assert experiment.ramp is not None
    total = experiment.ramp.steps[step]
    return [round(total / len(experiment.variants), 4)] * len(experiment.variants)
