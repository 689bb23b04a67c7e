"""Low-priority chat completions through the OpenAI Batch API: requests are gathered and sent
as one JSONL file when the batch is full or its oldest request old enough, the batch is polled,
and its results are mapped back to the waiting callers. A request the batch did not answer
(the batch failed, expired or timed out, or its line failed) comes back as None, and the
caller makes it synchronously instead."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from .bus import JobError

if TYPE_CHECKING:
    from .llm import Completion, Llm

log = logging.getLogger("seoblog.batch")

ENDPOINT: Final = "/v1/chat/completions"
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass
class _Pending:
    custom_id: str
    body: dict[str, Any]
    done: asyncio.Future[Completion | None]


@dataclass
class BatchStats:
    batches: int = 0
    completed: int = 0
    failed: int = 0
    requests: int = 0
    answered: int = 0
    fell_back: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


class BatchQueue:
    """One process's queue of requests waiting to go out in a batch."""

    def __init__(self, llm: Llm) -> None:
        self.llm = llm
        self.client = llm.client
        self.settings = llm.settings
        self._pending: list[_Pending] = []
        self._timer: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self.unsupported = False  # the provider has no Batch API (self-hosted servers)
        self.stats = BatchStats()

    async def submit(self, body: dict[str, Any]) -> Completion | None:
        """The batch's answer to one request, or None: make it synchronously then."""
        if self.unsupported:
            return None
        item = _Pending(f"req-{uuid.uuid4().hex}", body, asyncio.get_running_loop().create_future())
        self._pending.append(item)
        self.stats.requests += 1
        if len(self._pending) >= self.settings.llm_batch_max_items:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.create_task(self._flush_when_old())
        result = await asyncio.shield(item.done)
        if result is None:
            self.stats.fell_back += 1
            self.llm.stats.batch_fallbacks += 1
        return result

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._running):
            task.cancel()
        for item in self._pending:
            if not item.done.done():
                item.done.set_result(None)
        self._pending.clear()

    async def _flush_when_old(self) -> None:
        await asyncio.sleep(self.settings.llm_batch_max_age_s)
        self._timer = None
        self._flush()

    def _flush(self) -> None:
        if self._timer is not None and self._timer is not asyncio.current_task():
            self._timer.cancel()
            self._timer = None
        items, self._pending = self._pending, []
        if items:
            task = asyncio.create_task(self._run(items))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, items: list[_Pending]) -> None:
        self.stats.batches += 1
        answers: dict[str, Completion] = {}
        try:
            answers = await self._send_and_wait(items)
        except JobError as exc:
            if exc.code == "llm_rejected":  # e.g. 404: no files or batches endpoint
                self.unsupported = True
            log.warning("batch could not be sent or read; falling back", extra={"error": str(exc)})
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("batch failed unexpectedly; falling back")
        finally:
            for item in items:
                if not item.done.done():
                    item.done.set_result(answers.get(item.custom_id))
        self.stats.answered += len(answers)

    async def _send_and_wait(self, items: list[_Pending]) -> dict[str, Completion]:
        client, s = self.client, self.settings
        lines = "".join(
            json.dumps(
                {"custom_id": i.custom_id, "method": "POST", "url": ENDPOINT, "body": i.body},
                ensure_ascii=False,
            )
            + "\n"
            for i in items
        ).encode()
        uploaded = await self.llm.call(
            lambda: client.files.create(file=("batch.jsonl", lines), purpose="batch"), None
        )
        batch = await self.llm.call(
            lambda: client.batches.create(
                input_file_id=uploaded.id,
                endpoint=ENDPOINT,
                completion_window="24h",
                metadata={"service": s.service},
            ),
            None,
        )
        log.info("batch sent", extra={"batch_id": batch.id, "requests": len(items)})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + s.llm_batch_wait_s
        batch_id = batch.id
        while batch.status not in TERMINAL:
            if loop.time() > deadline:
                with contextlib.suppress(JobError):
                    await self.llm.call(lambda: client.batches.cancel(batch_id), None)
                self._count("timed_out")
                return {}
            await asyncio.sleep(s.llm_batch_poll_s)
            batch = await self.llm.call(lambda: client.batches.retrieve(batch_id), None)
        self._count(batch.status)
        if not batch.output_file_id:  # an expired batch may still carry finished lines
            log.warning(
                "batch ended without results; falling back",
                extra={"batch_id": batch.id, "status": batch.status},
            )
            return {}
        output_id = batch.output_file_id
        content = await self.llm.call(lambda: client.files.content(output_id), None)
        return _answers(content.text)

    def _count(self, status: str) -> None:
        self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1
        if status == "completed":
            self.stats.completed += 1
        else:
            self.stats.failed += 1


def _answers(jsonl: str) -> dict[str, Completion]:
    """custom_id -> (text, prompt tokens, completion tokens) of the lines that succeeded."""
    answers: dict[str, Completion] = {}
    for raw in jsonl.splitlines():
        if not raw.strip():
            continue
        line = json.loads(raw)
        response = line.get("response") or {}
        body = response.get("body") or {}
        if line.get("error") or response.get("status_code") != 200 or not body.get("choices"):
            continue
        usage = body.get("usage") or {}
        text = body["choices"][0]["message"].get("content") or ""
        answers[str(line["custom_id"])] = (
            text,
            int(usage.get("prompt_tokens", 0)),
            int(usage.get("completion_tokens", 0)),
        )
    return answers
