"""Crawler settings: CRAWLER_* plus the shared infrastructure URLs."""

import ipaddress

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from seoblog_runtime import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="CRAWLER_", env_file=".env", extra="ignore", populate_by_name=True
    )

    service: str = "crawler"
    port: int = Field(8001, description="HTTP port (API, or health and metrics)")
    user_agent: str = Field(
        "seoblog-crawler/0.1 (+https://github.com/seoblog)", description="User-Agent sent"
    )
    robots_user_agent: str = Field(
        "seoblog-crawler", description="product token matched against robots.txt groups"
    )
    fetch_timeout_s: float = Field(
        15.0, description="one fetch attempt: every redirect hop and the whole body"
    )
    fetch_attempts: int = Field(
        3, ge=1, description="tries for timeouts, connection errors, 5xx and 429"
    )
    fetch_backoff_s: float = Field(0.5, description="first retry delay (exponential, full jitter)")
    fetch_backoff_max_s: float = Field(8.0, description="longest retry delay")
    max_retry_after_s: float = Field(
        30.0, description="a longer Retry-After is left to redelivery by the bus"
    )
    max_redirects: int = Field(5, description="redirect hops followed")
    max_bytes: int = Field(5_000_000, description="largest page body as sent (compressed)")
    max_decoded_bytes: int = Field(
        20_000_000, description="largest page body once decompressed (gzip bombs)"
    )
    allowed_networks: list[str] = Field(
        default_factory=list,
        description="CIDRs crawled even though private or loopback (JSON list); empty: none",
    )
    host_rate_per_s: float = Field(
        1.0, gt=0, description="requests per second to one host, across replicas"
    )
    host_burst: float = Field(
        3.0, ge=1, description="requests to one host in a burst before the rate applies"
    )
    host_concurrency: int = Field(
        2, ge=1, description="requests in flight to one host, across replicas"
    )
    max_crawl_delay_s: float = Field(30.0, description="a longer robots.txt Crawl-delay is capped")
    max_host_wait_s: float = Field(
        60.0, description="longest wait for a host's turn before failing as rate_limited"
    )
    robots_ttl_s: float = Field(24 * 3600, description="robots.txt kept this long")
    robots_unreachable_ttl_s: float = Field(
        300, description="an unreachable robots.txt (crawling paused) is retried after this"
    )
    global_concurrency: int = Field(
        16, ge=1, description="pages crawled at once, over all three priorities"
    )
    concurrency: int = Field(
        16,
        ge=1,
        le=256,
        description="messages each priority's consumer pulls at once; keep it at least "
        "GLOBAL_CONCURRENCY so one priority alone can fill every slot",
    )
    starvation_limit: int = Field(
        4, ge=1, description="a waiting lower priority is served after being passed over this often"
    )
    page_ttl_s: float = Field(
        6 * 3600, description="a page fetched within this is reused; later, revalidated"
    )
    extract_workers: int = Field(0, description="extraction processes; 0: one per core")
    # Pages (article text and metadata) are large and rarely asked for twice within minutes:
    # a smaller in-process LRU than other services keep (Redis still holds every page).
    cache_local_items: int = Field(256, description="in-process LRU size (pages)")

    @field_validator("allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)  # raises ValueError with the reason
        return value
