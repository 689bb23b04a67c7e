"""The fake LLM server, exercised through the real `openai` client."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator

import openai
import pytest
from openai import AsyncOpenAI
from pydantic import BaseModel, Field

from seoblog_testing.fake_llm import FakeLLM, count_tokens, fake_translation, fill_schema

USER_TEXT = "Solar panels on city rooftops cut energy bills for thousands of households."


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


@pytest.fixture
async def client(llm: FakeLLM) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=llm.base_url, api_key=llm.api_key, max_retries=0) as c:
        yield c


def _messages(system: str = "You write blog posts.", user: str = USER_TEXT) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


async def test_plain_completion_returns_markdown_and_usage(
    llm: FakeLLM, client: AsyncOpenAI
) -> None:
    messages = _messages()
    completion = await client.chat.completions.create(model="fake-llm", messages=messages)

    text = completion.choices[0].message.content
    assert text
    assert text.startswith("## ")
    assert "rooftops" in text.lower()
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    prompt = sum(count_tokens(m["content"]) for m in messages)
    assert completion.usage.prompt_tokens == prompt
    assert completion.usage.completion_tokens == count_tokens(text)
    assert completion.usage.total_tokens == prompt + count_tokens(text)
    assert llm.calls == 1
    assert llm.tokens == completion.usage.total_tokens
    assert llm.requests[0]["messages"] == messages


async def test_streaming_sends_words_then_usage_when_asked(
    llm: FakeLLM, client: AsyncOpenAI
) -> None:
    stream = await client.chat.completions.create(
        model="fake-llm",
        messages=_messages(),
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces: list[str] = []
    usage = None
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            usage = chunk.usage

    text = "".join(pieces)
    assert len(pieces) > 5
    assert usage is not None
    assert usage.completion_tokens == count_tokens(text)
    assert llm.calls == 1


async def test_streaming_without_include_usage_sends_no_usage(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="fake-llm", messages=_messages(), stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert all(chunk.usage is None for chunk in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


class Outline(BaseModel):
    title: str = Field(min_length=10, max_length=60)
    sections: list[str] = Field(min_length=3)
    reading_minutes: int = Field(ge=2, le=20)
    tags: list[str]


async def test_json_schema_structured_output_parses_and_validates(client: AsyncOpenAI) -> None:
    completion = await client.chat.completions.parse(
        model="fake-llm", messages=_messages(), response_format=Outline
    )

    outline = completion.choices[0].message.parsed
    assert isinstance(outline, Outline)
    assert 10 <= len(outline.title) <= 60
    assert len(outline.sections) >= 3
    assert all(section.strip() for section in outline.sections)
    assert set(" ".join(outline.sections).split()) <= set(USER_TEXT.rstrip(".").split())


def test_fill_schema_respects_lengths_refs_and_bounds() -> None:
    schema = {
        "type": "object",
        "$defs": {"Item": {"type": "object", "properties": {"label": {"type": "string"}}}},
        "properties": {
            "slug": {"type": "string", "minLength": 40, "maxLength": 45},
            "short": {"type": "string", "maxLength": 3},
            "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "minItems": 4},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "kind": {"enum": ["news", "howto"]},
            "note": {"anyOf": [{"type": "null"}, {"type": "string"}]},
            "flag": {"type": "boolean"},
        },
    }
    value = fill_schema(schema, ["alpha", "beta"])

    assert 40 <= len(value["slug"]) <= 45
    assert len(value["short"]) <= 3
    assert len(value["items"]) == 4
    assert all(item["label"] for item in value["items"])
    assert value["score"] == 0.5
    assert value["kind"] == "news"
    assert isinstance(value["note"], str)
    assert value["flag"] is True


async def test_translate_prompt_tags_each_paragraph_and_keeps_markdown(
    client: AsyncOpenAI,
) -> None:
    source = "# Solar power\n\nPanels are cheap.\n\n- one\n- two"
    completion = await client.chat.completions.create(
        model="fake-llm",
        messages=_messages(system="Translate the user's markdown into German.", user=source),
    )

    expected = (
        "# [German] Solar power\n\n[German] Panels are cheap.\n\n- [German] one\n- [German] two"
    )
    assert completion.choices[0].message.content == expected
    assert fake_translation("a\n\nb", "fr") == "[fr] a\n\n[fr] b"


async def test_json_object_mode_returns_a_json_object(client: AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(
        model="fake-llm", messages=_messages(), response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(completion.choices[0].message.content or ""), dict)


async def test_custom_responder_decides_the_text(llm: FakeLLM, client: AsyncOpenAI) -> None:
    llm.responder = lambda request: f"{len(request['messages'])} messages"
    completion = await client.chat.completions.create(model="fake-llm", messages=_messages())
    assert completion.choices[0].message.content == "2 messages"


async def test_injected_429_with_retry_after_surfaces_as_rate_limit_error(
    llm: FakeLLM, client: AsyncOpenAI
) -> None:
    llm.fail_next(429, retry_after=7)

    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model="fake-llm", messages=_messages())

    assert caught.value.response.headers["retry-after"] == "7"
    assert llm.calls == 0
    assert len(llm.requests) == 1


async def test_injected_500_surfaces_as_internal_server_error(
    llm: FakeLLM, client: AsyncOpenAI
) -> None:
    llm.fail_next(500)
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model="fake-llm", messages=_messages())
    completion = await client.chat.completions.create(model="fake-llm", messages=_messages())
    assert completion.choices[0].message.content


async def test_client_retries_honour_retry_after_until_failures_run_out(llm: FakeLLM) -> None:
    llm.fail_next(503, times=2, retry_after=0.05)
    async with AsyncOpenAI(base_url=llm.base_url, api_key=llm.api_key, max_retries=2) as c:
        completion = await c.chat.completions.create(model="fake-llm", messages=_messages())
    assert completion.choices[0].message.content
    assert len(llm.requests) == 3
    assert llm.calls == 1


async def test_hung_request_times_out_on_the_client(llm: FakeLLM) -> None:
    llm.hang_next()
    async with AsyncOpenAI(
        base_url=llm.base_url, api_key=llm.api_key, max_retries=0, timeout=0.3
    ) as c:
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            await c.chat.completions.create(model="fake-llm", messages=_messages())
        assert time.monotonic() - started < 5
        completion = await c.chat.completions.create(model="fake-llm", messages=_messages())
    assert completion.choices[0].message.content
    assert llm.calls == 1


async def test_latency_delays_every_answer(llm: FakeLLM, client: AsyncOpenAI) -> None:
    llm.latency_s = 0.2
    started = time.monotonic()
    await client.chat.completions.create(model="fake-llm", messages=_messages())
    assert time.monotonic() - started >= 0.2


async def test_wrong_api_key_is_rejected(llm: FakeLLM) -> None:
    async with AsyncOpenAI(base_url=llm.base_url, api_key="wrong", max_retries=0) as c:
        with pytest.raises(openai.AuthenticationError):
            await c.chat.completions.create(model="fake-llm", messages=_messages())


async def test_models_are_listed(client: AsyncOpenAI) -> None:
    models = await client.models.list()
    assert [m.id for m in models.data] == ["fake-llm"]


def _batch_lines(count: int) -> bytes:
    lines = [
        {
            "custom_id": f"chunk-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "fake-llm", "messages": _messages(user=f"Paragraph {i} {USER_TEXT}")},
        }
        for i in range(count)
    ]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


async def _create_batch(client: AsyncOpenAI, count: int) -> str:
    uploaded = await client.files.create(
        file=("requests.jsonl", _batch_lines(count), "application/jsonl"), purpose="batch"
    )
    assert uploaded.purpose == "batch"
    assert uploaded.bytes == len(_batch_lines(count))
    batch = await client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.status == "validating"
    return batch.id


async def _wait_until_done(client: AsyncOpenAI, batch_id: str, timeout_s: float = 10.0) -> set[str]:
    """Poll the batch with a deadline; return every status seen."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        batch = await client.batches.retrieve(batch_id)
        seen.add(batch.status)
        if batch.status not in ("validating", "in_progress", "finalizing"):
            return seen
        await asyncio.sleep(0.02)
    raise TimeoutError(f"batch {batch_id} still running; saw {seen}")


async def test_batch_flow_end_to_end(llm: FakeLLM, client: AsyncOpenAI) -> None:
    llm.batch_delay_s = 0.3
    batch_id = await _create_batch(client, count=3)

    seen = await _wait_until_done(client, batch_id)
    batch = await client.batches.retrieve(batch_id)

    assert {"in_progress", "completed"} <= seen
    assert batch.request_counts is not None
    assert batch.request_counts.completed == 3
    assert batch.output_file_id is not None
    content = await client.files.content(batch.output_file_id)
    rows = [json.loads(line) for line in content.text.splitlines()]
    assert sorted(row["custom_id"] for row in rows) == ["chunk-0", "chunk-1", "chunk-2"]
    for row in rows:
        assert row["response"]["status_code"] == 200
        assert row["response"]["body"]["choices"][0]["message"]["content"]
    assert llm.calls == 3
    assert llm.tokens == sum(row["response"]["body"]["usage"]["total_tokens"] for row in rows)


async def test_failed_and_expired_batches_report_their_fate(
    llm: FakeLLM, client: AsyncOpenAI
) -> None:
    llm.fail_batches = True
    failed_id = await _create_batch(client, count=2)
    llm.fail_batches = False
    llm.expire_batches = True
    expired_id = await _create_batch(client, count=2)

    assert "failed" in await _wait_until_done(client, failed_id)
    assert "expired" in await _wait_until_done(client, expired_id)
    expired = await client.batches.retrieve(expired_id)
    assert expired.output_file_id is None
    assert expired.error_file_id is not None
    errors = (await client.files.content(expired.error_file_id)).text.splitlines()
    assert [json.loads(line)["error"]["code"] for line in errors] == ["batch_expired"] * 2
    assert llm.calls == 0


async def test_reset_forgets_requests_and_queued_faults(llm: FakeLLM, client: AsyncOpenAI) -> None:
    await client.chat.completions.create(model="fake-llm", messages=_messages())
    llm.fail_next(500, times=3)
    llm.latency_s = 5
    llm.reset()

    completion = await client.chat.completions.create(model="fake-llm", messages=_messages())
    assert completion.choices[0].message.content
    assert llm.calls == 1
    assert len(llm.requests) == 1


async def test_served_calls_name_the_job_purpose_and_prompt(
    llm: FakeLLM, client: AsyncOpenAI
) -> None:
    import re

    llm.job_pattern = re.compile(r"chaosjob\d+")
    translate = _messages("Translate into ISO code 'ko'.", "The chaosjob7 river runs.")
    await client.chat.completions.create(model="fake-llm", messages=translate)
    await client.chat.completions.create(model="fake-llm", messages=translate)
    await client.chat.completions.create(
        model="fake-llm",
        messages=_messages(user="no tag here"),
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "post", "schema": {"type": "object"}},
        },
        extra_headers={"X-Seoblog-Job": "job-1"},
    )

    first, second, post = llm.served
    assert (first.job, first.purpose) == ("chaosjob7", "translate")
    assert first.fingerprint == second.fingerprint  # the same request, billed twice
    assert (post.job, post.purpose) == ("job-1", "post")
    assert post.fingerprint != first.fingerprint
    llm.reset()
    assert llm.served == []


async def test_outage_and_random_faults_are_refused_and_not_served(
    llm: FakeLLM, client: AsyncOpenAI
) -> None:
    llm.down = True
    with pytest.raises(openai.InternalServerError) as refused:
        await client.chat.completions.create(model="fake-llm", messages=_messages())
    assert refused.value.status_code == 503
    llm.down = False
    llm.fault_rate = 0.5
    outcomes = []
    for _ in range(40):
        try:
            await client.chat.completions.create(model="fake-llm", messages=_messages())
            outcomes.append(200)
        except openai.APIStatusError as exc:
            outcomes.append(exc.status_code)
    assert set(outcomes) == {200, 429, 500}
    assert llm.calls == len(llm.served) == outcomes.count(200)
    assert llm.refused == 1 + outcomes.count(429) + outcomes.count(500)
