"""Gateway settings: GATEWAY_* plus the shared infrastructure URLs."""

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from seoblog_runtime import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", env_file=".env", extra="ignore", populate_by_name=True
    )

    service: str = "gateway"
    port: int = Field(8000, description="HTTP port (API, or health and metrics)")
    public_url: str | None = Field(None, description="base URL for absolute links, if proxied")
    max_body_bytes: int = Field(64 * 1024, description="largest request body accepted")
    max_batch: int = Field(100, ge=1, le=1000, description="most jobs in one batch submit")
    open_mode: bool = Field(
        False, description="no API keys needed (local use only; `seoblog up` turns it on)"
    )
    admin_key: SecretStr | None = Field(
        None, description="bootstrap admin API key (sk_seo_...); stored hashed at start-up"
    )
    rate_per_s: float = Field(10.0, gt=0, description="requests a second per API key")
    rate_burst: int = Field(30, ge=1, description="requests a key may make at once")
    status_cache_ttl_s: float = Field(
        2.0, ge=0, description="job status kept in process; changes refresh it at once"
    )
    publish_timeout_s: float = Field(
        5.0, gt=0, description="wait this long for the stream to confirm a submitted job"
    )
    relay_after_s: float = Field(
        10.0,
        gt=0,
        description="a queued job whose event the stream has not confirmed by then is "
        "published again (same event id, so the stream keeps one)",
    )
    relay_interval_s: float = Field(1.0, gt=0, description="how often the relay looks")
    result_cache_max_age_s: float = Field(
        86400.0,
        ge=0,
        description="default `max_age` of a request: reuse the post of an identical request "
        "that completed within this many seconds (0: never)",
    )
    live_heartbeat_s: float = Field(15.0, gt=0, description="SSE and WebSocket heartbeat")
    webhook_secret: SecretStr | None = Field(
        None, description="HMAC key for webhooks; empty: generated once and kept in the DB"
    )
    webhook_timeout_s: float = Field(10.0, gt=0, description="one webhook POST")
    webhook_backoff_s: list[float] = Field(
        default_factory=lambda: [5.0, 30.0, 120.0, 600.0, 1800.0],
        description="delay before each webhook retry; its length bounds the attempts",
    )
    callback_allowed_networks: list[str] = Field(
        default_factory=list,
        description="private networks callback URLs may reach (JSON list of CIDRs)",
    )
