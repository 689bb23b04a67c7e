"""Generator settings: GENERATOR_*, the shared LLM_* settings and infrastructure URLs."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from seoblog_runtime.llm import LlmServiceSettings


class Settings(LlmServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="GENERATOR_", env_file=".env", extra="ignore", populate_by_name=True
    )

    service: str = "generator"
    port: int = Field(8003, description="HTTP port (API, or health and metrics)")
    prompt_version: str = Field("post_v1", description="prompt template file in prompts/")
    max_source_chars: int = Field(24_000, description="source text given to the LLM")
    revise_prompt_version: str = Field(
        "revise_v1", description="revision prompt template file in prompts/"
    )
    revise_below: int = Field(
        70, ge=0, le=101, description="SEO score under which one revision pass runs; 0: never"
    )
