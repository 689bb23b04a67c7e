"""Gateway settings: GATEWAY_* plus the shared infrastructure URLs."""

from pydantic import Field
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
