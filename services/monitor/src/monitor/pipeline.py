"""Pure pipeline rules: which job state an event means, and which stage latencies and
terminal outcomes newly recorded states add to the figures (one event or a batch at a time)."""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from seoblog_contracts import (
    STAGE_STATE,
    Event,
    JobCancelled,
    JobFailed,
    JobProgress,
    JobState,
    JobSubmitted,
    PostGenerated,
    TextTranslated,
)

TERMINAL_RANK = 4
STATE_RANK: dict[JobState, int] = {
    JobState.QUEUED: 0,
    JobState.CRAWLING: 1,
    JobState.TRANSLATING: 2,
    JobState.GENERATING: 3,
    JobState.COMPLETED: TERMINAL_RANK,
    JobState.FAILED: TERMINAL_RANK,
    JobState.CANCELLED: TERMINAL_RANK,
}


@dataclass(frozen=True)
class Span:
    """A latency: from the moment a job entered `start` to the moment it entered `end`."""

    name: str
    start: JobState
    end: JobState


SPANS: tuple[Span, ...] = (
    Span("queue", JobState.QUEUED, JobState.CRAWLING),
    Span("crawl", JobState.CRAWLING, JobState.TRANSLATING),
    Span("translate", JobState.TRANSLATING, JobState.GENERATING),
    Span("generate", JobState.GENERATING, JobState.COMPLETED),
    Span("end_to_end", JobState.QUEUED, JobState.COMPLETED),
)


@dataclass(frozen=True)
class Transition:
    """A job entering a state at a time; failures also say where and why."""

    job_id: str
    state: JobState
    at: datetime
    stage: str | None = None
    code: str | None = None

    @property
    def rank(self) -> int:
        return STATE_RANK[self.state]


def transition_of(event: Event) -> Transition | None:
    """The job state an event announces, or None for events that move no job (alerts, data)."""
    match event:
        case JobSubmitted():
            return Transition(event.job_id, JobState.QUEUED, event.occurred_at)
        case JobProgress():
            return Transition(event.job_id, STAGE_STATE[event.stage], event.occurred_at)
        case PostGenerated():
            return Transition(event.job_id, JobState.COMPLETED, event.occurred_at)
        case JobFailed():
            return Transition(
                event.job_id, JobState.FAILED, event.occurred_at, str(event.stage), event.code
            )
        case JobCancelled():
            return Transition(event.job_id, JobState.CANCELLED, event.occurred_at)
    return None


@dataclass(frozen=True)
class Observation:
    """What one newly recorded state adds: latencies now measurable, and the job's outcome."""

    latencies: list[tuple[str, float]] = field(default_factory=list)
    finished: JobState | None = None


def observe(state: JobState, times: Mapping[JobState, datetime]) -> Observation:
    """Figures completed by `state`, given every state the job has reached (`state` included).

    A latency is counted by whichever of its two ends is recorded second, so events that
    arrive out of order are measured once. A job finishes with its first terminal state.
    """
    latencies = [
        (span.name, (times[span.end] - times[span.start]).total_seconds())
        for span in SPANS
        if state in (span.start, span.end) and span.start in times and span.end in times
    ]
    terminal_before = any(s.terminal for s in times if s != state)
    return Observation(
        # Negative spans only come from skewed clocks; they would poison the histograms.
        latencies=[(name, seconds) for name, seconds in latencies if seconds >= 0],
        finished=state if state.terminal and not terminal_before else None,
    )


def earliest_per_state(transitions: Iterable[Transition]) -> list[Transition]:
    """One transition per job and state, the earliest, in the order they first appear.

    A state's time is its earliest event (progress 0% before 100%, whatever order they are
    handled in), so a batch needs to record only that one.
    """
    first: dict[tuple[str, JobState], Transition] = {}
    for transition in transitions:
        key = (transition.job_id, transition.state)
        if key not in first or transition.at < first[key].at:
            first[key] = transition
    return list(first.values())


def observe_new(
    new: Sequence[Transition], times: Mapping[str, Mapping[JobState, datetime]]
) -> list[tuple[Transition, Observation]]:
    """What the states recorded new in one batch add, each latency counted exactly once.

    `times` holds every state of each job after the batch. The new states of one job are
    observed one after another, each seeing the job's older states and those observed
    before it, as if they had been recorded one at a time.
    """
    unseen: dict[str, set[JobState]] = {}
    for transition in new:
        unseen.setdefault(transition.job_id, set()).add(transition.state)
    observed = []
    for transition in new:
        pending = unseen[transition.job_id]
        pending.discard(transition.state)
        job_times = times.get(transition.job_id, {})
        visible = {state: at for state, at in job_times.items() if state not in pending}
        visible[transition.state] = job_times.get(transition.state, transition.at)
        observed.append((transition, observe(transition.state, visible)))
    return observed


class RecentIds:
    """The last `size` event ids seen by this process: a redelivery is counted once."""

    def __init__(self, size: int = 65_536) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, event_id: str) -> bool:
        """True the first time `event_id` is seen (among the last `size`)."""
        if event_id in self._ids:
            self._ids.move_to_end(event_id)
            return False
        self._ids[event_id] = None
        if len(self._ids) > self.size:
            self._ids.popitem(last=False)
        return True


# -- rollups: what a batch adds to the per-minute figures ---------------------------------

# Latency sketch: log-spaced buckets with 1 % relative error (DDSketch's mapping), so a
# quantile of any number of spans is read from a few hundred counters per span and minute.
SKETCH_ALPHA = 0.01
_GAMMA = (1 + SKETCH_ALPHA) / (1 - SKETCH_ALPHA)
_LOG_GAMMA = math.log(_GAMMA)
SKETCH_MIN_S = 1e-4  # shorter spans share the lowest bucket


def sketch_bucket(seconds: float) -> int:
    return math.ceil(math.log(max(seconds, SKETCH_MIN_S)) / _LOG_GAMMA)


def bucket_value(bucket: int) -> float:
    """The value a bucket stands for: within SKETCH_ALPHA of every value in it."""
    return 2 * _GAMMA**bucket / (_GAMMA + 1)


def sketch_quantile(buckets: Mapping[int, int], q: float) -> float | None:
    """The q-quantile of the counted values, interpolated between neighbours like
    PostgreSQL's percentile_cont, from bucket values (so within SKETCH_ALPHA)."""
    total = sum(buckets.values())
    if total == 0:
        return None
    rank = q * (total - 1)
    low, high = math.floor(rank), math.ceil(rank)
    values: dict[int, float] = {}
    seen = 0
    for bucket in sorted(buckets):
        count = buckets[bucket]
        for wanted in (low, high):
            if seen <= wanted < seen + count:
                values[wanted] = bucket_value(bucket)
        seen += count
        if high in values:
            break
    return values[low] + (rank - low) * (values[high] - values[low])


def minute_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(second=0, microsecond=0)


@dataclass
class Rollup:
    """Counts one batch adds, keyed as the rollup tables are: by the minute things happened."""

    states: Counter[tuple[datetime, str, str, str]] = field(default_factory=Counter)
    outcomes: Counter[tuple[datetime, str]] = field(default_factory=Counter)
    spans: Counter[tuple[datetime, str, int]] = field(default_factory=Counter)


def rollup_of(
    observed: Iterable[tuple[Transition, Observation]],
    times: Mapping[str, Mapping[JobState, datetime]],
) -> Rollup:
    """Jobs entering each state (failures with stage and code), first terminal states, and
    span lengths in sketch buckets, each by the minute its (end) state was entered."""
    rollup = Rollup()
    for transition, observation in observed:
        minute = minute_of(transition.at)
        rollup.states[
            (minute, transition.state.value, transition.stage or "", transition.code or "")
        ] += 1
        if observation.finished is not None:
            rollup.outcomes[(minute, observation.finished.value)] += 1
        for name, seconds in observation.latencies:
            end = times.get(transition.job_id, {}).get(SPAN_BY_NAME[name].end, transition.at)
            rollup.spans[(minute_of(end), name, sketch_bucket(seconds))] += 1
    return rollup


SPAN_BY_NAME = {span.name: span for span in SPANS}


# -- LLM cost: what a job's usage reports add, each dollar once ---------------------------

TRANSLATE_PART, JOB_PART = "translate", "job"


@dataclass(frozen=True)
class CostReport:
    """A job's LLM usage as an event reports it: its translation (seo.text.translated) or
    the whole job, every stage (seo.post.generated)."""

    job_id: str
    part: str
    cost_usd: float
    tokens: int
    at: datetime


def cost_of(event: Event) -> CostReport | None:
    match event:
        case TextTranslated():
            part, usage = TRANSLATE_PART, event.usage
        case PostGenerated():
            part, usage = JOB_PART, event.usage
        case _:
            return None
    tokens = usage.prompt_tokens + usage.completion_tokens
    return CostReport(event.job_id, part, usage.cost_usd, tokens, event.occurred_at)


def cost_added(
    new: Iterable[CostReport], known: Mapping[tuple[str, str], tuple[float, int]]
) -> dict[tuple[datetime, str], float]:
    """What newly recorded reports add to the per-minute cost, by (minute, "cost_usd" or
    "tokens"). `known` holds each job's parts recorded before. A translation counts unless
    the whole job's figure is known; the whole job counts less the translation already
    counted; so a job adds its whole cost once, in whichever order its events arrive."""
    seen = dict(known)
    added: dict[tuple[datetime, str], float] = {}
    for report in new:
        cost, tokens = report.cost_usd, report.tokens
        if report.part == TRANSLATE_PART and (report.job_id, JOB_PART) in seen:
            cost, tokens = 0.0, 0
        elif report.part == JOB_PART and (report.job_id, TRANSLATE_PART) in seen:
            counted = seen[(report.job_id, TRANSLATE_PART)]
            cost, tokens = max(cost - counted[0], 0.0), max(tokens - counted[1], 0)
        seen[(report.job_id, report.part)] = (report.cost_usd, report.tokens)
        minute = minute_of(report.at)
        added[(minute, "cost_usd")] = added.get((minute, "cost_usd"), 0.0) + cost
        added[(minute, "tokens")] = added.get((minute, "tokens"), 0.0) + tokens
    return added
