"""Settings shared by every service: infrastructure URLs without a prefix, the rest under the
service's own prefix (CRAWLER_*, GATEWAY_*, ...)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _shared(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class ServiceSettings(BaseSettings):
    """Base for each service's Settings; subclasses set `env_prefix` and `service`."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    service: str = "service"

    nats_url: str = Field(
        "nats://127.0.0.1:4222",
        validation_alias=_shared("NATS_URL"),
        description="NATS server with JetStream; several, comma-separated, for a cluster",
    )
    nats_user: str | None = Field(
        None,
        validation_alias=_shared("NATS_USER"),
        description="this service's NATS user (its subject permissions are on the server)",
    )
    nats_password: SecretStr | None = Field(
        None, validation_alias=_shared("NATS_PASSWORD"), description="password of NATS_USER"
    )
    stream_replicas: int = Field(
        1,
        ge=1,
        le=5,
        validation_alias=_shared("NATS_STREAM_REPLICAS"),
        description="copies of each stream (3 on a 3-node JetStream cluster)",
    )
    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/postgres",
        validation_alias=_shared("DATABASE_URL"),
        description="PostgreSQL; each service keeps its tables in its own schema",
    )
    redis_url: str | None = Field(
        None, validation_alias=_shared("REDIS_URL"), description="empty: in-process cache only"
    )
    namespace: str = Field(
        "",
        validation_alias=_shared("SEOBLOG_NAMESPACE"),
        pattern=r"^[a-z0-9_]{0,32}$",
        description="prefixes subjects, streams, schemas and cache keys (tests, tenants)",
    )
    log_level: str = Field(
        "INFO", validation_alias=_shared("LOG_LEVEL"), description="DEBUG, INFO, WARNING, ERROR"
    )

    host: str = Field("0.0.0.0", description="interface the HTTP server binds")  # noqa: S104
    port: int = Field(8000, description="HTTP port: API or health/metrics")
    db_schema: str | None = Field(None, description="defaults to the service name")
    db_pool_max: int = Field(10, description="largest PostgreSQL pool")

    # Start-up before the dependencies are up (issue 9 G): serve /healthz, retry, then start.
    connect_timeout_s: float = Field(
        5.0, gt=0, description="bound on one attempt to reach NATS or PostgreSQL at start-up"
    )
    connect_retry_initial_s: float = Field(
        0.5, gt=0, description="first wait before connecting again; doubles per attempt"
    )
    connect_retry_max_s: float = Field(
        15.0, gt=0, description="longest wait between start-up connection attempts"
    )

    # Consumer behaviour (ARCHITECTURE.md, Events): bounded, retried with backoff, then DLQ.
    max_ack_pending: int = Field(64, description="unacked messages per consumer (back-pressure)")
    max_deliver: int = Field(
        5, description="deliveries before a message is failed and dead-lettered"
    )
    ack_wait_s: float = Field(
        30.0, description="redelivery after this long without an ack or heartbeat"
    )
    retry_backoff_s: list[float] = Field(
        default_factory=lambda: [1.0, 5.0, 15.0, 30.0],
        description="delay before each redelivery after a failure (JSON list, jittered)",
    )
    concurrency: int = Field(8, ge=1, le=256, description="messages handled at once")
    progress_interval_s: float = Field(
        0.5,
        ge=0,
        le=60,
        description="a job's progress events within one stage phase at most this often "
        "(its first and a new phase always go; 0: every one)",
    )
    stream_max_age_s: float = Field(7 * 24 * 3600, description="age limit of the SEO stream")
    dlq_max_age_s: float = Field(30 * 24 * 3600, description="age limit of the SEO_DLQ stream")

    cache_ttl_s: float = Field(24 * 3600, description="default Redis entry lifetime")
    cache_local_items: int = Field(1024, description="in-process LRU size")
    cache_local_ttl_s: float = Field(300, description="in-process entry lifetime")

    event_key: SecretStr | None = Field(
        None,
        validation_alias=_shared("SEOBLOG_EVENT_KEY"),
        description="HMAC key that signs and verifies every event (empty: unsigned, warned)",
    )

    @field_validator("redis_url", "event_key", "nats_user", "nats_password", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value in ("", None) else value

    @property
    def nats_servers(self) -> list[str]:
        return [url.strip() for url in self.nats_url.split(",") if url.strip()]

    @property
    def schema_name(self) -> str:
        base = self.db_schema or self.service
        return f"{self.namespace}_{base}" if self.namespace else base

    @property
    def cache_prefix(self) -> str:
        return f"{self.namespace}:{self.service}" if self.namespace else self.service
