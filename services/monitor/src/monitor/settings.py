"""Monitor settings: the shared infrastructure fields plus the alert, scrape and dashboard
knobs (MONITOR_*)."""

from __future__ import annotations

import ipaddress

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from seoblog_runtime import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="MONITOR_", env_file=".env", extra="ignore", populate_by_name=True
    )

    service: str = "monitor"
    port: int = Field(8004, description="HTTP port (API, or health and metrics)")
    evaluate_every_s: float = Field(15, gt=0, description="alerts, gauges and consumer lag")

    # high_failure_rate
    failure_rate_threshold: float = Field(
        0.5, ge=0, le=1, description="fire high_failure_rate above this share of failed jobs"
    )
    alert_window_s: float = Field(300, gt=0, description="jobs finished this recently count")
    alert_min_jobs: int = Field(5, ge=1, description="fewer finished jobs never fire the alert")
    # jobs_stuck
    stuck_after_s: float = Field(
        1800, gt=0, description="jobs_stuck: an unfinished job with no new state for this long"
    )
    # consumer_lag_growing
    lag_threshold: int = Field(
        100, ge=0, description="consumer_lag_growing: pending messages above this, and growing"
    )
    lag_window_s: float = Field(
        600, gt=0, description="consumer_lag_growing: growing compared with this long ago"
    )
    # dlq_growing
    dlq_window_s: float = Field(
        900, gt=0, description="dlq_growing: messages dead-lettered within this long"
    )
    # llm_cost_over_budget
    llm_cost_budget_usd: float = Field(
        5.0, ge=0, description="llm_cost_over_budget: LLM spend allowed per llm_cost_window_s"
    )
    llm_cost_window_s: float = Field(
        3600, gt=0, description="llm_cost_over_budget: the window the budget is for"
    )
    # end_to_end_latency_high
    e2e_p95_objective_s: float = Field(
        300, gt=0, description="end_to_end_latency_high: p95 submission-to-post above this"
    )
    e2e_window_s: float = Field(
        900, gt=0, description="end_to_end_latency_high: jobs completed this recently count"
    )
    e2e_min_jobs: int = Field(
        1, ge=1, description="end_to_end_latency_high: fewer completed jobs never fire it"
    )
    # service_down, llm_breaker_open: read from the services' own /metrics
    services: dict[str, AnyHttpUrl] = Field(
        default_factory=dict,
        description='services to scrape, JSON {"name": "http://host:port"}; their /metrics '
        "feed service_down and llm_breaker_open (empty: those two rules are off)",
    )
    scrape_timeout_s: float = Field(3, gt=0, description="bound on one /metrics scrape")
    service_down_after_s: float = Field(
        60, ge=0, description="service_down: no successful scrape of a service for this long"
    )
    # where alerts go besides seo.alert.fired / seo.alert.resolved
    alert_webhooks: list[AnyHttpUrl] = Field(
        default_factory=list,
        description="URLs (JSON list) that get each fired and resolved alert as a signed POST",
    )
    alert_webhook_allowed_networks: list[str] = Field(
        default_factory=list,
        description="private networks alert webhooks may reach (JSON list of CIDRs); others "
        "get public addresses only",
    )
    alert_webhook_secret: SecretStr | None = Field(
        None,
        description="signs alert webhooks: Seoblog-Signature t=<unix s>,v1=<HMAC-SHA256 of "
        '"<t>.<body>">, as the gateway signs job webhooks (empty: unsigned)',
    )
    # the live page
    dashboard_minutes: int = Field(
        60, ge=5, le=1440, description="minutes of history the live page shows"
    )
    dashboard_push_s: float = Field(2, gt=0, description="how often the live page is updated")

    @field_validator("alert_webhook_allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)  # ValueError names the bad one
        return value
