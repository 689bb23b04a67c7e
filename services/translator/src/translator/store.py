"""All SQL of the translator: the translation result of each job."""

from __future__ import annotations

from seoblog_contracts import TextTranslated
from seoblog_runtime import Store, migrations_of


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
