"""Crawler settings: CRAWLER_* plus the shared infrastructure URLs."""

from pydantic_settings import SettingsConfigDict

from seoblog_runtime import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="CRAWLER_", env_file=".env", extra="ignore", populate_by_name=True
    )

    service: str = "crawler"
    port: int = 8001
    user_agent: str = "seoblog-crawler/0.1 (+https://github.com/seoblog)"
    fetch_timeout_s: float = 15.0
    max_redirects: int = 5
    max_bytes: int = 5_000_000
    page_ttl_s: float = 6 * 3600
    extract_workers: int = 0  # 0: one process per core
