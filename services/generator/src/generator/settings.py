"""Generator settings: GENERATOR_*, the shared LLM_* settings and infrastructure URLs."""

from pydantic_settings import SettingsConfigDict

from seoblog_runtime.llm import LlmServiceSettings


class Settings(LlmServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="GENERATOR_", env_file=".env", extra="ignore", populate_by_name=True
    )

    service: str = "generator"
    port: int = 8003
    prompt_version: str = "post_v1"
    max_source_chars: int = 24_000
