"""Event models: the payloads every service publishes and consumes (ARCHITECTURE.md, Events).

Consumers ignore unknown fields, so adding an optional field is a compatible change;
anything else bumps SCHEMA_VERSION.
"""

from __future__ import annotations

import functools
import json
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

import langcodes
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, field_validator

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS: frozenset[int] = frozenset({1})
"""Versions a consumer can read; any other is a malformed event (dead-lettered, not guessed)."""

# A fixed namespace so stage outputs get deterministic ids (see `stage_event_id`).
_EVENT_NAMESPACE = uuid.UUID("5f1d3b7e-2c4a-4d8e-9b1f-6a7c8d9e0f12")


def new_event_id() -> str:
    return uuid.uuid4().hex


def stage_event_id(job_id: str, kind: str, attempt: int = 0) -> str:
    """The id of the one event a stage emits for a job.

    Deterministic, so a redelivered input republishes under the same Nats-Msg-Id and
    JetStream's duplicate window drops it, and consumers dedupe on it too.
    """
    return uuid.uuid5(_EVENT_NAMESPACE, f"{job_id}:{kind}:{attempt}").hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Priority(StrEnum):
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class Stage(StrEnum):
    CRAWL = "crawl"
    TRANSLATE = "translate"
    GENERATE = "generate"


class JobState(StrEnum):
    QUEUED = "queued"
    CRAWLING = "crawling"
    TRANSLATING = "translating"
    GENERATING = "generating"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED}


STAGE_STATE = {
    Stage.CRAWL: JobState.CRAWLING,
    Stage.TRANSLATE: JobState.TRANSLATING,
    Stage.GENERATE: JobState.GENERATING,
}

# Codes that name no language a post can be written in (undetermined, multiple, none, other).
_NOT_A_LANGUAGE = frozenset({"und", "mul", "zxx", "mis"})


@functools.lru_cache(maxsize=1024)
def _real_language(tag: str) -> str:
    """A registered BCP 47 tag whose language is real (langcodes knows the IANA registry)."""
    if not langcodes.tag_is_valid(tag) or tag.split("-")[0].lower() in _NOT_A_LANGUAGE:
        raise ValueError(
            f"{tag!r} is not a known language: use an ISO 639 code, optionally with a script "
            "or region (ko, de, pt-BR, zh-Hant)"
        )
    return tag


LanguageCode = Annotated[
    str,
    Field(
        pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$",
        description="ISO 639 language, optionally with a script or region (BCP 47)",
    ),
    AfterValidator(_real_language),
]


class Usage(BaseModel):
    """Token usage and cost of LLM work, per call or summed per job."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    cost_usd: float = 0.0
    unconfirmed_calls: int = Field(
        default=0,
        description="Calls interrupted before their answer was recorded (a killed process): "
        "counted in calls, tokens estimated from the prompt, maybe billed by the provider.",
    )

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            calls=self.calls + other.calls,
            cost_usd=round(self.cost_usd + other.cost_usd, 8),
            unconfirmed_calls=self.unconfirmed_calls + other.unconfirmed_calls,
        )


OverrideValue = str | int | float | bool


class Assignment(BaseModel):
    """A job's variant in one experiment, chosen once by the gateway at submit; the stages
    apply `overrides` (keys `<service>.<setting>`, see seoblog_experiments) and never
    re-assign."""

    model_config = ConfigDict(frozen=True)

    experiment_id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    variant: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    overrides: dict[str, OverrideValue] = Field(default_factory=dict, max_length=20)


class JobSpec(BaseModel):
    """What the user asked for; travels with the job through every stage."""

    url: HttpUrl
    keywords: list[Annotated[str, Field(min_length=1, max_length=80)]] = Field(
        default_factory=list, max_length=20
    )
    target_language: LanguageCode = "en"
    length: int = Field(default=800, ge=100, le=5000, description="target words")
    priority: Priority = Priority.NORMAL
    experiments: list[Assignment] = Field(
        default_factory=list,
        max_length=8,
        description="the job's experiment variants, assigned by the gateway (never by the "
        "client); empty when no experiment targets it",
    )

    @field_validator("keywords")
    @classmethod
    def _strip_keywords(cls, value: list[str]) -> list[str]:
        cleaned = [k.strip() for k in value]
        if any(not k for k in cleaned):
            raise ValueError("keywords must not be blank")
        return cleaned

    def overrides(self, service: str) -> dict[str, OverrideValue]:
        """The settings `service` uses for this job instead of its own (from its experiment
        variants), keyed by setting name; when two experiments set one, the first wins."""
        prefix = f"{service}."
        found: dict[str, OverrideValue] = {}
        for assignment in self.experiments:
            for key, value in assignment.overrides.items():
                if key.startswith(prefix):
                    found.setdefault(key.removeprefix(prefix), value)
        return found

    def overrides_tag(self, service: str) -> str:
        """What `service` adds to every cache key its overrides change: "" without any, so
        jobs outside experiments keep the keys they always had."""
        found = self.overrides(service)
        return json.dumps(found, sort_keys=True) if found else ""


class Event(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    subject_suffix: ClassVar[str]

    event_id: str = Field(default_factory=new_event_id)
    job_id: str
    occurred_at: datetime = Field(default_factory=utcnow)
    schema_version: int = SCHEMA_VERSION

    @field_validator("schema_version")
    @classmethod
    def _supported_version(cls, value: int) -> int:
        if value not in SUPPORTED_SCHEMA_VERSIONS:
            raise ValueError(f"unsupported schema_version {value}")
        return value


class JobSubmitted(Event):
    subject_suffix: ClassVar[str] = "job.submitted"
    type: Literal["job.submitted"] = "job.submitted"
    spec: JobSpec


class PageCrawled(Event):
    subject_suffix: ClassVar[str] = "page.crawled"
    type: Literal["page.crawled"] = "page.crawled"
    spec: JobSpec
    url: str
    final_url: str
    title: str
    text: str = Field(description="article body as markdown")
    language: str | None = None
    content_hash: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    from_cache: bool = False


class TextTranslated(Event):
    subject_suffix: ClassVar[str] = "text.translated"
    type: Literal["text.translated"] = "text.translated"
    spec: JobSpec
    source_url: str
    title: str
    text: str
    source_language: str | None
    target_language: str
    translated: bool
    note: str = ""
    content_hash: str
    usage: Usage = Field(default_factory=Usage)


class SeoReport(BaseModel):
    score: int = Field(ge=0, le=100)
    checks: dict[str, bool] = Field(default_factory=dict)
    reasons: list[str] = Field(default_factory=list)


class PostGenerated(Event):
    subject_suffix: ClassVar[str] = "post.generated"
    type: Literal["post.generated"] = "post.generated"
    post_id: str
    source_url: str
    language: str = Field(description="the language the post is written in")
    requested_language: str | None = Field(
        default=None,
        description="the target_language the job asked for; differs from `language` when the "
        "writer could not write in it (the offline writer keeps the article's language)",
    )
    title: str
    slug: str
    meta_description: str
    markdown: str
    html: str
    keywords: list[str]
    seo: SeoReport
    writer: str = Field(description="'llm:<model>' or 'offline'")
    usage: Usage = Field(default_factory=Usage, description="whole job, all stages")
    revised: bool = Field(False, description="a revision pass ran (the first draft scored low)")
    experiments: list[Assignment] = Field(
        default_factory=list, description="the job's experiment variants (from its spec)"
    )


class JobProgress(Event):
    subject_suffix: ClassVar[str] = "job.progress"
    type: Literal["job.progress"] = "job.progress"
    stage: Stage
    percent: int = Field(ge=0, le=100)
    message: str = ""


class JobFailed(Event):
    subject_suffix: ClassVar[str] = "job.failed"
    type: Literal["job.failed"] = "job.failed"
    stage: Stage | Literal["gateway"]
    code: str
    message: str
    retryable: bool = False


class JobCancelled(Event):
    subject_suffix: ClassVar[str] = "job.cancelled"
    type: Literal["job.cancelled"] = "job.cancelled"
    reason: str = ""


class AlertFired(Event):
    subject_suffix: ClassVar[str] = "alert.fired"
    type: Literal["alert.fired"] = "alert.fired"
    job_id: str = ""
    alert: str
    severity: Literal["info", "warning", "critical"] = "warning"
    summary: str
    value: float | None = None


class AlertResolved(Event):
    subject_suffix: ClassVar[str] = "alert.resolved"
    type: Literal["alert.resolved"] = "alert.resolved"
    job_id: str = ""
    alert: str
    summary: str = ""


ExperimentStatus = Literal["running", "paused", "promoted", "rolled_back"]


class ExperimentChanged(Event):
    """An experiment was created or changed; carries the whole definition, so the monitor
    (which never reads the gateway's tables) knows what to watch."""

    subject_suffix: ClassVar[str] = "experiment.changed"
    type: Literal["experiment.changed"] = "experiment.changed"
    job_id: str = ""
    experiment_id: str
    status: ExperimentStatus
    version: int = Field(ge=1, description="grows with every change")
    definition: dict[str, Any] = Field(description="the experiment as GET /v1/experiments/{id}")


class ExperimentRolledBack(Event):
    """A guardrail broke: every variant goes to 0 %, the ramp stops."""

    subject_suffix: ClassVar[str] = "experiment.rolled_back"
    type: Literal["experiment.rolled_back"] = "experiment.rolled_back"
    job_id: str = ""
    experiment_id: str
    variant: str
    reason: str
    figures: dict[str, Any] = Field(default_factory=dict, description="the breached figures")


class ExperimentRamped(Event):
    """A ramp step held (jobs, time, guardrails): the variants move to the next step."""

    subject_suffix: ClassVar[str] = "experiment.ramped"
    type: Literal["experiment.ramped"] = "experiment.ramped"
    job_id: str = ""
    experiment_id: str
    step: int = Field(ge=0, description="index of the new step in the ramp")
    share: float = Field(ge=0, le=100, description="percent of matching jobs in the variants")
    figures: dict[str, Any] = Field(
        default_factory=dict, description="what the step held on: jobs, seconds, per metric"
    )


EVENT_TYPES: tuple[type[Event], ...] = (
    JobSubmitted,
    PageCrawled,
    TextTranslated,
    PostGenerated,
    JobProgress,
    JobFailed,
    JobCancelled,
    AlertFired,
    AlertResolved,
    ExperimentChanged,
    ExperimentRolledBack,
    ExperimentRamped,
)
