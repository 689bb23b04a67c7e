"""The monitor's Prometheus figures, on the service's own registry: events, job outcomes,
stage latencies, failures, jobs per state, consumer lag and alert state."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from seoblog_contracts import JobState

from .pipeline import SPANS, Observation, Transition

# Crawls take seconds, LLM stages up to minutes, a low-priority batch job up to hours.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600)


class MonitorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "seoblog_events_observed",
            "Pipeline events observed by type; a redelivered event counts once",
            ["type"],
            registry=registry,
        )
        self.jobs_finished = Counter(
            "seoblog_jobs_finished", "Jobs by terminal state", ["state"], registry=registry
        )
        self.jobs = Gauge("seoblog_jobs", "Jobs in each state now", ["state"], registry=registry)
        self.latency = Histogram(
            "seoblog_pipeline_latency_seconds",
            "Stage latency: queue wait, crawl, translate, generate, and end to end",
            ["span"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.failures = Counter(
            "seoblog_job_failures",
            "Failed jobs by stage and code",
            ["stage", "code"],
            registry=registry,
        )
        self.consumer_pending = Gauge(
            "seoblog_consumer_pending",
            "Messages not yet delivered to a durable consumer",
            ["consumer"],
            registry=registry,
        )
        self.consumer_ack_pending = Gauge(
            "seoblog_consumer_ack_pending",
            "Messages delivered to a durable consumer and not yet acknowledged",
            ["consumer"],
            registry=registry,
        )
        self.failure_rate = Gauge(
            "seoblog_failure_rate",
            "Share of the jobs finished in the alert window that failed",
            registry=registry,
        )
        self.alert_active = Gauge(
            "seoblog_alert_active", "1 while an alert is firing", ["alert"], registry=registry
        )
        # Every series exists from the start, so dashboards and rate() see zeros, not gaps.
        for state in JobState:
            self.jobs.labels(state.value)
            if state.terminal:
                self.jobs_finished.labels(state.value)
        for span in SPANS:
            self.latency.labels(span.name)

    def observe(self, transition: Transition, observation: Observation) -> None:
        for span, seconds in observation.latencies:
            self.latency.labels(span).observe(seconds)
        if observation.finished is not None:
            self.jobs_finished.labels(observation.finished.value).inc()
        if transition.state is JobState.FAILED:
            self.failures.labels(transition.stage or "unknown", transition.code or "unknown").inc()

    def set_jobs(self, counts: Mapping[str, int]) -> None:
        for state in JobState:
            self.jobs.labels(state.value).set(counts.get(state.value, 0))

    def set_consumers(self, lag: Mapping[str, tuple[int, int]]) -> None:
        """(num_pending, num_ack_pending) per consumer; consumers that are gone disappear."""
        self.consumer_pending.clear()
        self.consumer_ack_pending.clear()
        for consumer, (pending, ack_pending) in lag.items():
            self.consumer_pending.labels(consumer).set(pending)
            self.consumer_ack_pending.labels(consumer).set(ack_pending)
