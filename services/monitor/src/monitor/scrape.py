"""Reads the other services' own /metrics (MONITOR_SERVICES): whether each answers, and the
state of its LLM circuit breaker (`seoblog_llm_breaker_state`). The monitor has no other way
to see either: a service that is down publishes nothing, and the breaker lives in process."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from opentelemetry.instrumentation.utils import suppress_http_instrumentation
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger("seoblog.monitor.scrape")

BREAKER_METRIC = "seoblog_llm_breaker_state"


@dataclass
class Target:
    name: str
    url: str
    first_tried: datetime | None = None
    last_ok: datetime | None = None
    last_error: str = ""
    breaker: float | None = None  # last known; None: the service has no LLM client


@dataclass
class Scraper:
    services: dict[str, str]
    timeout_s: float
    targets: dict[str, Target] = field(init=False)

    def __post_init__(self) -> None:
        self.targets = {n: Target(n, u.rstrip("/")) for n, u in sorted(self.services.items())}

    async def scrape(self, client: httpx.AsyncClient, now: datetime) -> None:
        """One scrape of every target, at once."""
        await asyncio.gather(*(self._one(client, t, now) for t in self.targets.values()))

    async def _one(self, client: httpx.AsyncClient, target: Target, now: datetime) -> None:
        target.first_tried = target.first_tried or now
        try:
            # A scrape is polling, not work: no trace (issue 11: idle services make no spans).
            with suppress_http_instrumentation():
                response = await client.get(f"{target.url}/metrics", timeout=self.timeout_s)
            response.raise_for_status()
            target.breaker = breaker_state(response.text)
        except (httpx.HTTPError, ValueError) as exc:
            target.last_error = f"{type(exc).__name__}: {exc}"[:200]
            log.info("scrape failed", extra={"target": target.name, "error": target.last_error})
            return
        target.last_ok, target.last_error = now, ""

    def down(self, now: datetime, after_s: float) -> list[str]:
        """Targets whose last scrape failed and that had no good one for `after_s`."""
        return [
            t.name
            for t in self.targets.values()
            if t.last_error
            and (now - (t.last_ok or t.first_tried or now)).total_seconds() >= after_s
        ]

    def breakers(self) -> dict[str, float]:
        return {t.name: t.breaker for t in self.targets.values() if t.breaker is not None}


def breaker_state(text: str) -> float | None:
    """The worst breaker state in a /metrics page (0 closed, 1 open, 2 half-open), or None."""
    states = [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == BREAKER_METRIC
    ]
    return max(states) if states else None
