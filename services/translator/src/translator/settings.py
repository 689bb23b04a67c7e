"""Translator settings: TRANSLATOR_*, the shared LLM_* settings and infrastructure URLs."""

from pydantic_settings import SettingsConfigDict

from seoblog_runtime.llm import LlmServiceSettings


class Settings(LlmServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="TRANSLATOR_", env_file=".env", extra="ignore", populate_by_name=True
    )

    service: str = "translator"
    port: int = 8002
    segment_tokens: int = 800
    segment_concurrency: int = 4
    prompt_version: str = "translate-v1"
