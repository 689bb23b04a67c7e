"""All SQL of the translator: the translation result of each job, and every segment call a job
made, from its intent to its answer."""

from __future__ import annotations

from dataclasses import dataclass, field

from seoblog_contracts import TextTranslated, Usage
from seoblog_runtime import Store, migrations_of


@dataclass(frozen=True)
class PaidSegment:
    translation: str
    usage: Usage


@dataclass
class SegmentLedger:
    done: dict[str, PaidSegment] = field(default_factory=dict)
    next_attempt: dict[str, int] = field(default_factory=dict)


class PgTranslationStore(Store):
    def __init__(self, database_url: str, schema: str, pool_max: int = 10) -> None:
        super().__init__(database_url, schema, migrations_of(__file__), pool_max=pool_max)

    async def record(self, event: TextTranslated) -> TextTranslated:
        """Keep the job's translation; the first one recorded wins. One round trip when this
        one is the first (the insert alone is atomic; a concurrent insert of the same job is
        waited for), a second to read the winner otherwise."""
        inserted = await self.pool.fetchval(
            """
            INSERT INTO translations (job_id, content_hash, source_language,
                                      target_language, translated, event)
            VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (job_id) DO NOTHING
            RETURNING true
            """,
            event.job_id,
            event.content_hash,
            event.source_language,
            event.target_language,
            event.translated,
            event.model_dump_json(),
        )
        if inserted:
            return event
        row = await self.pool.fetchval(
            "SELECT event FROM translations WHERE job_id = $1", event.job_id
        )
        return TextTranslated.model_validate_json(row)

    async def job_state(self, job_id: str) -> tuple[TextTranslated | None, SegmentLedger]:
        """In one round trip: the job's recorded translation if it has one, else what it
        already did per segment key (the answered segments to reuse, and the next attempt
        number of every key it began)."""
        rows = await self.pool.fetch(
            """
            SELECT t.event, s.segment_key, s.attempt, s.state, s.translation, s.prompt_tokens,
                   s.completion_tokens, s.cost_usd
            FROM (SELECT $1::text AS job_id) j
            LEFT JOIN translations t ON t.job_id = j.job_id
            LEFT JOIN segment_calls s ON s.job_id = j.job_id AND t.job_id IS NULL
            ORDER BY s.attempt
            """,
            job_id,
        )
        ledger = SegmentLedger()
        if rows and rows[0]["event"] is not None:
            return TextTranslated.model_validate_json(rows[0]["event"]), ledger
        for row in rows:
            key = row["segment_key"]
            if key is None:  # no segment yet: the one row of the outer joins
                continue
            ledger.next_attempt[key] = max(ledger.next_attempt.get(key, 0), row["attempt"] + 1)
            if row["state"] == "done" and key not in ledger.done:
                ledger.done[key] = PaidSegment(
                    row["translation"],
                    Usage(
                        prompt_tokens=row["prompt_tokens"],
                        completion_tokens=row["completion_tokens"],
                        calls=1,
                        cost_usd=float(row["cost_usd"]),
                    ),
                )
        return None, ledger

    async def open_segment(
        self, job_id: str, key: str, attempt: int, model: str, prompt_hash: str, estimate: Usage
    ) -> None:
        """The intent, written before the call: it counts at its estimate until the answer is
        recorded (a process killed in between leaves it open)."""
        await self.pool.execute(
            """
            INSERT INTO segment_calls (job_id, segment_key, attempt, state, model, prompt_hash,
                                       prompt_tokens, completion_tokens, cost_usd)
            VALUES ($1, $2, $3, 'open', $4, $5, $6, $7, $8)
            """,
            job_id,
            key,
            attempt,
            model,
            prompt_hash,
            estimate.prompt_tokens,
            estimate.completion_tokens,
            estimate.cost_usd,
        )

    async def complete_segment(
        self, job_id: str, key: str, attempt: int, translation: str, usage: Usage, *, batched: bool
    ) -> None:
        await self.pool.execute(
            """
            UPDATE segment_calls SET state = 'done', translation = $4, prompt_tokens = $5,
                   completion_tokens = $6, cost_usd = $7, batched = $8, completed_at = now()
            WHERE job_id = $1 AND segment_key = $2 AND attempt = $3
            """,
            job_id,
            key,
            attempt,
            translation,
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.cost_usd,
            batched,
        )

    async def fail_segment(self, job_id: str, key: str, attempt: int, error: str) -> None:
        """No answer came (the provider refused or failed): nothing was billed."""
        await self.pool.execute(
            """
            UPDATE segment_calls SET state = 'failed', error = $4, prompt_tokens = 0,
                   completion_tokens = 0, cost_usd = 0, completed_at = now()
            WHERE job_id = $1 AND segment_key = $2 AND attempt = $3 AND state = 'open'
            """,
            job_id,
            key,
            attempt,
            error[:500],
        )

    async def job_usage(self, job_id: str) -> Usage:
        """What this job's segment calls cost: the ledger's sum, unconfirmed counted apart."""
        return await self.ledger_usage("segment_calls", job_id)
