"""All SQL of the translator: the translation result of each job, and the segments each job
paid the LLM for."""

from __future__ import annotations

from dataclasses import dataclass

from seoblog_contracts import TextTranslated, Usage
from seoblog_runtime import Store, migrations_of


@dataclass(frozen=True)
class PaidSegment:
    translation: str
    usage: Usage


class PgTranslationStore(Store):
    def __init__(self, database_url: str, schema: str, pool_max: int = 10) -> None:
        super().__init__(database_url, schema, migrations_of(__file__), pool_max=pool_max)

    async def translation_of(self, job_id: str) -> TextTranslated | None:
        row = await self.pool.fetchval("SELECT event FROM translations WHERE job_id = $1", job_id)
        return None if row is None else TextTranslated.model_validate_json(row)

    async def record(self, event: TextTranslated) -> TextTranslated:
        """Keep the job's translation; the first one recorded wins."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """
                INSERT INTO translations (job_id, content_hash, source_language,
                                          target_language, translated, event)
                VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (job_id) DO NOTHING
                """,
                event.job_id,
                event.content_hash,
                event.source_language,
                event.target_language,
                event.translated,
                event.model_dump_json(),
            )
            row = await conn.fetchval(
                "SELECT event FROM translations WHERE job_id = $1", event.job_id
            )
        return TextTranslated.model_validate_json(row)

    async def paid_segments(self, job_id: str) -> dict[str, PaidSegment]:
        """Segments this job already paid for, by segment key."""
        rows = await self.pool.fetch(
            """
            SELECT segment_key, translation, prompt_tokens, completion_tokens, cost_usd
            FROM segment_calls WHERE job_id = $1
            """,
            job_id,
        )
        return {
            row["segment_key"]: PaidSegment(
                row["translation"],
                Usage(
                    prompt_tokens=row["prompt_tokens"],
                    completion_tokens=row["completion_tokens"],
                    calls=1,
                    cost_usd=float(row["cost_usd"]),
                ),
            )
            for row in rows
        }

    async def record_segment(
        self, job_id: str, key: str, model: str, usage: Usage, translation: str, *, batched: bool
    ) -> None:
        await self.pool.execute(
            """
            INSERT INTO segment_calls (job_id, segment_key, model, prompt_tokens,
                                       completion_tokens, cost_usd, batched, translation)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING
            """,
            job_id,
            key,
            model,
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.cost_usd,
            batched,
            translation,
        )
