"""Translator settings: TRANSLATOR_*, the shared LLM_* settings and infrastructure URLs."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from seoblog_runtime.llm import LlmServiceSettings


class Settings(LlmServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="TRANSLATOR_", env_file=".env", extra="ignore", populate_by_name=True
    )

    service: str = "translator"
    port: int = Field(8002, description="HTTP port (API, or health and metrics)")
    segment_tokens: int = Field(800, description="token budget of one translated segment")
    segment_concurrency: int = Field(4, description="segments translated at once per job")
    prompt_version: str = Field("translate-v1", description="part of the cache key")
