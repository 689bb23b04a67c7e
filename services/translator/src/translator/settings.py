"""Translator settings: TRANSLATOR_*, the shared LLM_* settings and infrastructure URLs."""

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from seoblog_runtime.llm import LlmServiceSettings

from .detect import LANGUAGES, check_languages


class Settings(LlmServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="TRANSLATOR_", env_file=".env", extra="ignore", populate_by_name=True
    )

    service: str = "translator"
    port: int = Field(8002, description="HTTP port (API, or health and metrics)")
    segment_tokens: int = Field(800, description="token budget of one translated segment")
    segment_concurrency: int = Field(4, description="segments translated at once per job")
    prompt_version: str = Field("translate-v1", description="part of the cache key")
    detect_languages: list[str] = Field(
        default_factory=lambda: list(LANGUAGES),
        description="ISO 639-1 codes language detection chooses from (JSON list); [] for all "
        "75 lingua knows, at about twice the memory and CPU",
    )

    @field_validator("detect_languages")
    @classmethod
    def _known_languages(cls, value: list[str]) -> list[str]:
        value = [code.strip().lower() for code in value if code.strip()]
        check_languages(value)
        return value
