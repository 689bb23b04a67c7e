"""All SQL of the generator: posts, and LLM calls with usage and cost."""

from __future__ import annotations

import json
from typing import Any

from seoblog_contracts import PostGenerated, Usage
from seoblog_runtime import Store, migrations_of


class PgPostStore(Store):
    def __init__(self, database_url: str, schema: str, pool_max: int = 10) -> None:
        super().__init__(database_url, schema, migrations_of(__file__), pool_max=pool_max)

    async def post_of(self, job_id: str) -> PostGenerated | None:
        row = await self.pool.fetchval("SELECT event FROM posts WHERE job_id = $1", job_id)
        return None if row is None else PostGenerated.model_validate_json(row)

    async def record_post(self, event: PostGenerated) -> PostGenerated:
        """Keep the job's post; the first one recorded wins, so there is never a second."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """
                INSERT INTO posts (post_id, job_id, writer, seo_score, event)
                VALUES ($1, $2, $3, $4, $5) ON CONFLICT (job_id) DO NOTHING
                """,
                event.post_id,
                event.job_id,
                event.writer,
                event.seo.score,
                event.model_dump_json(),
            )
            row = await conn.fetchval("SELECT event FROM posts WHERE job_id = $1", event.job_id)
        return PostGenerated.model_validate_json(row)

    async def llm_call(self, job_id: str, purpose: str) -> dict[str, Any] | None:
        """A call already made (and billed) for this job, to reuse on redelivery."""
        row = await self.pool.fetchrow(
            "SELECT response FROM llm_calls WHERE job_id = $1 AND purpose = $2", job_id, purpose
        )
        return None if row is None else dict(json.loads(row["response"]))

    async def record_llm_call(
        self,
        job_id: str,
        purpose: str,
        cache_key: str,
        model: str,
        usage: Usage,
        response: dict[str, Any],
    ) -> None:
        await self.pool.execute(
            """
            INSERT INTO llm_calls (job_id, purpose, cache_key, model, prompt_tokens,
                                   completion_tokens, cost_usd, response)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (job_id, purpose) DO NOTHING
            """,
            job_id,
            purpose,
            cache_key,
            model,
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.cost_usd,
            json.dumps(response),
        )

    async def job_usage(self, job_id: str) -> Usage:
        """What this job's LLM calls cost, summed."""
        row = await self.pool.fetchrow(
            """
            SELECT count(*) AS calls, coalesce(sum(prompt_tokens), 0) AS prompt_tokens,
                   coalesce(sum(completion_tokens), 0) AS completion_tokens,
                   coalesce(sum(cost_usd), 0) AS cost_usd
            FROM llm_calls WHERE job_id = $1
            """,
            job_id,
        )
        return Usage(
            prompt_tokens=row["prompt_tokens"],
            completion_tokens=row["completion_tokens"],
            calls=row["calls"],
            cost_usd=round(float(row["cost_usd"]), 8),
        )
