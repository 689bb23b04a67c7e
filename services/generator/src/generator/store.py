"""All SQL of the generator: posts, and every paid LLM call from its intent to its answer,
with usage and cost."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from seoblog_contracts import PostGenerated, Usage
from seoblog_runtime import Store, migrations_of


@dataclass(frozen=True)
class PaidCall:
    """One call of a job: 'open' (intent only), 'done' (answered) or 'failed' (no answer)."""

    attempt: int
    state: str
    raw: str | None
    response: dict[str, Any] | None  # the parsed draft of rows written before intents existed


class PgPostStore(Store):
    def __init__(self, database_url: str, schema: str, pool_max: int = 10) -> None:
        super().__init__(database_url, schema, migrations_of(__file__), pool_max=pool_max)

    async def post_of(self, job_id: str) -> PostGenerated | None:
        row = await self.pool.fetchval("SELECT event FROM posts WHERE job_id = $1", job_id)
        return None if row is None else PostGenerated.model_validate_json(row)

    async def record_post(self, event: PostGenerated) -> PostGenerated:
        """Keep the job's post; the first one recorded wins, so there is never a second. One
        round trip when this one is the first (the insert alone is atomic; a concurrent insert
        of the same job is waited for), a second to read the winner otherwise."""
        inserted = await self.pool.fetchval(
            """
            INSERT INTO posts (post_id, job_id, writer, seo_score, event)
            VALUES ($1, $2, $3, $4, $5) ON CONFLICT (job_id) DO NOTHING
            RETURNING true
            """,
            event.post_id,
            event.job_id,
            event.writer,
            event.seo.score,
            event.model_dump_json(),
        )
        if inserted:
            return event
        row = await self.pool.fetchval("SELECT event FROM posts WHERE job_id = $1", event.job_id)
        return PostGenerated.model_validate_json(row)

    async def calls_of(self, job_id: str, purpose: str) -> list[PaidCall]:
        """The calls this job made (or began) for `purpose`, oldest attempt first."""
        rows = await self.pool.fetch(
            """
            SELECT attempt, state, raw, response FROM llm_calls
            WHERE job_id = $1 AND purpose = $2 ORDER BY attempt
            """,
            job_id,
            purpose,
        )
        return [
            PaidCall(
                attempt=row["attempt"],
                state=row["state"],
                raw=row["raw"],
                response=None if row["response"] is None else dict(json.loads(row["response"])),
            )
            for row in rows
        ]

    async def open_call(
        self,
        job_id: str,
        purpose: str,
        attempt: int,
        *,
        cache_key: str,
        model: str,
        prompt_hash: str,
        estimate: Usage,
    ) -> None:
        """The intent, written before the call: it carries the estimate it counts as until
        the answer is recorded (a process killed in between leaves it open)."""
        await self.pool.execute(
            """
            INSERT INTO llm_calls (job_id, purpose, attempt, state, cache_key, model, prompt_hash,
                                   prompt_tokens, completion_tokens, cost_usd)
            VALUES ($1, $2, $3, 'open', $4, $5, $6, $7, $8, $9)
            """,
            job_id,
            purpose,
            attempt,
            cache_key,
            model,
            prompt_hash,
            estimate.prompt_tokens,
            estimate.completion_tokens,
            estimate.cost_usd,
        )

    async def complete_call(
        self, job_id: str, purpose: str, attempt: int, raw: str, usage: Usage
    ) -> None:
        """The answer and its real usage, recorded before anything else is done with it."""
        await self.pool.execute(
            """
            UPDATE llm_calls SET state = 'done', raw = $4, prompt_tokens = $5,
                   completion_tokens = $6, cost_usd = $7, completed_at = now()
            WHERE job_id = $1 AND purpose = $2 AND attempt = $3
            """,
            job_id,
            purpose,
            attempt,
            raw,
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.cost_usd,
        )

    async def fail_call(self, job_id: str, purpose: str, attempt: int, error: str) -> None:
        """No answer came (the provider refused or failed): nothing was billed."""
        await self.pool.execute(
            """
            UPDATE llm_calls SET state = 'failed', error = $4, prompt_tokens = 0,
                   completion_tokens = 0, cost_usd = 0, completed_at = now()
            WHERE job_id = $1 AND purpose = $2 AND attempt = $3 AND state = 'open'
            """,
            job_id,
            purpose,
            attempt,
            error[:500],
        )

    async def job_usage(self, job_id: str) -> Usage:
        """What this job's LLM calls cost (the ledger's sum, unconfirmed calls counted apart)."""
        return await self.ledger_usage("llm_calls", job_id)
