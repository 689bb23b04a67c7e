"""Monitor settings: the shared infrastructure fields plus the alert knobs (MONITOR_*)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from seoblog_runtime import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="MONITOR_", env_file=".env", extra="ignore", populate_by_name=True
    )

    service: str = "monitor"
    port: int = Field(8004, description="HTTP port (API, or health and metrics)")

    failure_rate_threshold: float = Field(
        0.5, ge=0, le=1, description="fire high_failure_rate above this share of failed jobs"
    )
    alert_window_s: float = Field(300, gt=0, description="jobs finished this recently count")
    alert_min_jobs: int = Field(5, ge=1, description="fewer finished jobs never fire the alert")
    evaluate_every_s: float = Field(15, gt=0, description="alerts, gauges and consumer lag")
