"""Crawler settings: CRAWLER_* plus the shared infrastructure URLs."""

from pydantic import Field
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
    fetch_timeout_s: float = Field(15.0, description="whole fetch, redirects included")
    max_redirects: int = Field(5, description="redirect hops followed")
    max_bytes: int = Field(5_000_000, description="largest page body")
    page_ttl_s: float = Field(6 * 3600, description="a page fetched within this is reused")
    extract_workers: int = Field(0, description="extraction processes; 0: one per core")
