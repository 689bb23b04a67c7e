"""The overrides a variant may set: `<service>.<setting>` keys each service declares it
applies from a job's spec. The gateway rejects any other key when an experiment is created."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from seoblog_contracts import Assignment, JobSpec
from seoblog_contracts.events import OverrideValue


@dataclass(frozen=True)
class Override:
    """One setting a service lets a variant change."""

    kind: type[str] | type[int] | type[float]
    description: str
    choices: tuple[str, ...] = ()
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None

    def check(self, value: OverrideValue) -> str | None:
        """Why `value` is not acceptable, or None."""
        if self.kind is str:
            if not isinstance(value, str):
                return "must be a string"
            if self.choices and value not in self.choices:
                return f"must be one of {', '.join(self.choices)}"
            if self.pattern and not re.fullmatch(self.pattern, value):
                return f"must match {self.pattern}"
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
        if self.kind is int and not isinstance(value, int):
            return "must be a whole number"
        if self.minimum is not None and value < self.minimum:
            return f"must be at least {self.minimum:g}"
        if self.maximum is not None and value > self.maximum:
            return f"must be at most {self.maximum:g}"
        return None


_NAME = r"[a-z0-9][a-z0-9_]{0,39}"
_MODEL = r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}"

OVERRIDES: dict[str, Override] = {
    "generator.prompt_version": Override(
        str, "post prompt template in generator/prompts/ (e.g. post_v2)", pattern=_NAME
    ),
    "generator.revise_prompt_version": Override(
        str, "revision prompt template in generator/prompts/", pattern=_NAME
    ),
    "generator.model": Override(str, "the generator's LLM model", pattern=_MODEL),
    "generator.temperature": Override(float, "sampling temperature", minimum=0, maximum=2),
    "generator.revise_below": Override(
        int, "SEO score under which a revision pass runs (0: never)", minimum=0, maximum=101
    ),
    "translator.model": Override(str, "the translator's LLM model", pattern=_MODEL),
    "crawler.extract_mode": Override(
        str,
        "article extraction: default (precision, recall when it stopped short), precision "
        "(never recall), recall (recall only)",
        choices=("default", "precision", "recall"),
    ),
}


def validate_overrides(overrides: Mapping[str, OverrideValue]) -> list[str]:
    """Problems with a variant's overrides, one sentence each (empty: all good)."""
    problems = []
    for key, value in overrides.items():
        known = OVERRIDES.get(key)
        if known is None:
            problems.append(f"{key!r} is not an override any service accepts")
            continue
        why = known.check(value)
        if why is not None:
            problems.append(f"{key!r} {why}")
    return problems


def service_overrides(assignments: Sequence[Assignment], service: str) -> dict[str, OverrideValue]:
    """The settings `service` uses for a job instead of its own (JobSpec.overrides)."""
    return JobSpec(url="https://x.invalid/", experiments=list(assignments)).overrides(service)


def cache_tag(assignments: Sequence[Assignment], service: str) -> str:
    """What a service adds to the cache keys its overrides change (JobSpec.overrides_tag)."""
    return JobSpec(url="https://x.invalid/", experiments=list(assignments)).overrides_tag(service)
