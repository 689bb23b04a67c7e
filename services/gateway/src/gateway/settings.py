"""Gateway settings: GATEWAY_* plus the shared infrastructure URLs."""

import ipaddress

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
        False,
        description="no API keys needed, every caller is admin (local use only; `seoblog up` "
        "turns it on); refused on a non-loopback GATEWAY_HOST unless OPEN_MODE_FORCE",
    )
    open_mode_force: bool = Field(
        False,
        description="allow open mode on a non-loopback host: anyone who reaches the port is "
        "admin (logged as a warning at start-up)",
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
    live_recheck_s: float = Field(
        5.0,
        gt=0,
        description="open SSE streams and WebSockets check their API key this often; a "
        "revoked key's streams end",
    )
    jobs_per_s: float = Field(
        10.0, gt=0, description="jobs a second an API key may submit (alone or in batches)"
    )
    jobs_burst: int = Field(
        100, ge=1, description="jobs a key may submit at once (a whole batch takes its size)"
    )
    auth_fail_per_s: float = Field(
        0.5, gt=0, description="failed authentications a second allowed per client address"
    )
    auth_fail_burst: int = Field(
        20, ge=1, description="failed authentications a client address may make at once"
    )
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
    crawler_url: str = Field(
        "http://127.0.0.1:8001",
        description="the crawler's HTTP address: GET /v1/posts/{id}/source reads the source "
        "article from its page store",
    )
    source_timeout_s: float = Field(
        2.0, gt=0, description="wait this long for the crawler's stored page (then 503)"
    )
    source_cache_ttl_s: float = Field(
        60.0, ge=0, description="a post's source article kept in process this long"
    )
    webhook_progress_interval_s: float = Field(
        5.0,
        gt=0,
        description="progress webhooks of a job: one at each stage change, and within a stage "
        "at most one per this many seconds (the latest progress)",
    )


class OpenModeRefused(RuntimeError):
    """Open mode (every caller is admin) on an address other machines can reach."""


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name or a wildcard (0.0.0.0, ::): reachable from elsewhere


def check_open_mode(settings: Settings) -> bool:
    """Raise OpenModeRefused for open mode on a non-loopback host unless forced; True when it
    runs forced (the caller warns)."""
    if not settings.open_mode or is_loopback(settings.host):
        return False
    if settings.open_mode_force:
        return True
    raise OpenModeRefused(
        f"GATEWAY_OPEN_MODE gives every caller the admin scope, and GATEWAY_HOST={settings.host}"
        " is reachable from other machines. Bind 127.0.0.1, use API keys (GATEWAY_ADMIN_KEY),"
        " or set GATEWAY_OPEN_MODE_FORCE=true if you really mean it."
    )
