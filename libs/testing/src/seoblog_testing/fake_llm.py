"""A fake OpenAI-compatible HTTP server: chat completions (plain, streaming, structured), models
and the Batch API, with knobs for latency, injected failures, outages and hangs, and a record of
every completion served (job, purpose, prompt fingerprint). Talk to it with the real `openai`
client through `FakeLLM.base_url`.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import hashlib
import itertools
import json
import math
import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from seoblog_testing.servers import BackgroundServer, Served

Responder = Callable[[dict[str, Any]], str]

_FALLBACK_WORDS = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit")
_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "not_found"),
    408: ("timeout", "timeout"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", "server_error"),
    502: ("server_error", "bad_gateway"),
    503: ("server_error", "service_unavailable"),
}


# --- deterministic assistant text -------------------------------------------------------------


def message_text(message: dict[str, Any]) -> str:
    """The text of a chat message whose content is a string or a list of text parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") in ("text", "input_text")
        )
    return ""


def _texts(request: dict[str, Any], *roles: str) -> list[str]:
    messages = request.get("messages") or []
    return [message_text(m) for m in messages if isinstance(m, dict) and m.get("role") in roles]


def _words_of(text: str) -> list[str]:
    return re.findall(r"[^\W\d_]+(?:['’-][^\W\d_]+)*", text) or list(_FALLBACK_WORDS)


class _WordSource:
    """Hands out words from a text in order, wrapping around, so fields differ but stay stable."""

    def __init__(self, words: Sequence[str]) -> None:
        self._words = list(words) or list(_FALLBACK_WORDS)
        self._next = 0

    def take(self, count: int) -> list[str]:
        out = [self._words[(self._next + i) % len(self._words)] for i in range(count)]
        self._next = (self._next + count) % len(self._words)
        return out


def _fill_string(schema: dict[str, Any], words: _WordSource) -> str:
    fmt = schema.get("format")
    if fmt == "date-time":
        return "2024-01-01T00:00:00Z"
    if fmt == "date":
        return "2024-01-01"
    if fmt == "time":
        return "00:00:00"
    if fmt in ("uri", "url", "iri"):
        return "https://example.com/" + "-".join(w.lower() for w in words.take(3))
    if fmt == "email":
        return "writer@example.com"
    if fmt == "uuid":
        return "00000000-0000-4000-8000-000000000000"
    min_len = int(schema.get("minLength", 0))
    max_len = schema.get("maxLength")
    parts = words.take(5)
    text = " ".join(parts)
    while len(text) < min_len:
        text += " " + " ".join(words.take(5))
    if max_len is not None and len(text) > int(max_len):
        text = text[: int(max_len)].rstrip()
        text += "x" * max(0, min_len - len(text))
    return text


def _fill_number(schema: dict[str, Any], integer: bool) -> int | float:
    step = 1 if integer else 0.5
    low = schema.get("minimum")
    if schema.get("exclusiveMinimum") is not None and not isinstance(
        schema["exclusiveMinimum"], bool
    ):
        low = schema["exclusiveMinimum"] + step
    high = schema.get("maximum")
    if schema.get("exclusiveMaximum") is not None and not isinstance(
        schema["exclusiveMaximum"], bool
    ):
        high = schema["exclusiveMaximum"] - step
    if low is not None and high is not None:
        value: float = (low + high) / 2
    elif low is not None:
        value = low
    elif high is not None:
        value = min(high, 1)
    else:
        value = 1
    if integer:
        value = math.floor(value)
        if low is not None and value < low:
            value = math.ceil(low)
        return int(value)
    return float(value)


def _resolve_ref(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    if not ref.startswith("#"):
        raise ValueError(f"only local $ref is supported, got {ref!r}")
    node: Any = root
    for part in ref.lstrip("#").strip("/").split("/"):
        if part:
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return dict(node)


def _fill(schema: dict[str, Any], root: dict[str, Any], words: _WordSource, depth: int) -> Any:
    if "$ref" in schema:
        extra = {k: v for k, v in schema.items() if k != "$ref"}
        return _fill({**_resolve_ref(schema["$ref"], root), **extra}, root, words, depth)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            options = [o for o in schema[key] if o.get("type") != "null"] or schema[key]
            return _fill(options[0], root, words, depth)
    if schema.get("allOf"):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            part = _resolve_ref(part["$ref"], root) if "$ref" in part else part
            merged_props = {**merged.get("properties", {}), **part.get("properties", {})}
            merged = {**merged, **part, "properties": merged_props}
        return _fill(merged, root, words, depth)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        if depth > 8:
            return {}
        props: dict[str, Any] = schema.get("properties", {})
        return {name: _fill(sub, root, words, depth + 1) for name, sub in props.items()}
    if kind == "array":
        if depth > 8:
            return []
        prefix = schema.get("prefixItems") or []
        count = int(schema.get("minItems", 0)) or 2
        if schema.get("maxItems") is not None:
            count = min(count, int(schema["maxItems"]))
        count = max(count, len(prefix))
        items = schema.get("items")
        item_schema: dict[str, Any] = items if isinstance(items, dict) else {}
        return [
            _fill(prefix[i] if i < len(prefix) else item_schema, root, words, depth + 1)
            for i in range(count)
        ]
    if kind == "string":
        return _fill_string(schema, words)
    if kind == "integer":
        return _fill_number(schema, integer=True)
    if kind == "number":
        return _fill_number(schema, integer=False)
    if kind == "boolean":
        return True
    return None


def fill_schema(schema: dict[str, Any], words: Sequence[str] = ()) -> Any:
    """A value valid for a JSON schema, its strings made of `words` (e.g. the user message)."""
    return _fill(schema, schema, _WordSource(words), 0)


_TARGET_PATTERNS = (
    re.compile(r"ISO(?:[ _-]?639-1)?\s+code\s+[\"'`]([A-Za-z][\w-]*)[\"'`]", re.IGNORECASE),
    re.compile(r"target[ _-]?language\s*(?:is|[:=])\s*[\"'`]?([A-Za-z][\w-]*)", re.IGNORECASE),
    re.compile(r"\binto\s+(?!the\b|a\b|an\b)([A-Za-z][\w-]*)", re.IGNORECASE),
    re.compile(r"\bto\s+([A-Z][\w-]*|[a-z]{2}(?:[-_][A-Za-z]{2})?)\b"),
)
_MARKDOWN_MARKER = re.compile(r"^(\s*(?:#{1,6}\s+|[-*+]\s+|\d+[.)]\s+|>\s*)+)(\S.*)$")


def _target_language(system_text: str) -> str:
    for pattern in _TARGET_PATTERNS:
        match = pattern.search(system_text)
        if match:
            return match.group(1)
    return "xx"


def _tag_block(block: str, tag: str) -> str:
    if not block.strip() or block.lstrip().startswith(("```", "~~~")):
        return block
    lines = block.split("\n")
    for i, line in enumerate(lines):
        marker = _MARKDOWN_MARKER.match(line)
        if marker:
            lines[i] = marker.group(1) + tag + marker.group(2)
        elif i == 0:
            lines[i] = tag + line
    return "\n".join(lines)


def fake_translation(text: str, target: str) -> str:
    """`text` with "[<target>] " before each paragraph, after any heading/list/quote marker."""
    tag = f"[{target}] "
    return "\n\n".join(_tag_block(block, tag) for block in re.split(r"\n\s*\n", text))


def _wants_json(request: dict[str, Any]) -> bool:
    fmt = request.get("response_format")
    return isinstance(fmt, dict) and fmt.get("type") in ("json_schema", "json_object")


_NO_SPACE_RE = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0e7f]")
_POST_FIELDS = frozenset({"title", "slug", "meta_description", "markdown", "faq"})
_LENGTH_RE = re.compile(r"about (\d+) words")
_KEYWORD_RE = re.compile(r'main keyword "([^"\n]+)"')


def _padded(text: str, words: list[str], at_least: int, at_most: int, tries: int) -> str:
    """`text` with words of `words` (in turn) added while shorter than `at_least`, each only
    when the result stays within `at_most` characters."""
    for word in itertools.islice(itertools.cycle(words), tries):
        if len(text) >= at_least:
            break
        if len(text) + len(word) + 1 <= at_most:
            text = f"{text} {word}"
    return text


def fake_post(prompt: str) -> dict[str, Any]:
    """The generator's post, as a good writer would meet its brief: the length asked, the main
    keyword in title, slug, meta, intro and a heading at about 1.5 % of the words, short
    sentences, and no sentence of the source (its words in new orders)."""
    length = int(m.group(1)) if (m := _LENGTH_RE.search(prompt)) else 600
    keyword = m.group(1).strip() if (m := _KEYWORD_RE.search(prompt)) else "this story"
    source = prompt.split("Source article (markdown):", 1)[-1]
    # Runs of CJK or Thai count a word per character: the fake writes in the spaced words only.
    spaced = (w for w in _words_of(source) if len(w) > 3 and not _NO_SPACE_RE.search(w))
    vocabulary = list(dict.fromkeys(w.lower() for w in spaced))
    vocabulary = vocabulary[:300] or list(_FALLBACK_WORDS)
    counter = itertools.count()

    def sentence(with_keyword: bool = False) -> str:
        n = next(counter)
        picked = [vocabulary[(n * 7 + i * 13) % len(vocabulary)] for i in range(11)]
        if with_keyword:
            picked.insert(4, keyword)
        return f"The {' '.join(picked)}."

    def paragraph(count: int, start: int) -> str:
        return " ".join(sentence((start + i) % 6 == 0) for i in range(count))

    capital = keyword[:1].upper() + keyword[1:]
    sections, per_section = 4, max(2, (length - 110) // (4 * 13 * 3))
    body = [paragraph(3, 0).replace("The ", f"{capital} matters: the ", 1)]
    for number in range(sections):
        heading = (
            f"Why {keyword} matters" if number == 0 else " ".join(vocabulary[number : number + 3])
        )
        body.append(f"## {heading[:1].upper()}{heading[1:]}")
        body += [paragraph(per_section, 6 * number + k) for k in range(3)]
    title = _padded(f"{capital}: what it means", vocabulary, 50, 60, 200)
    meta = _padded(f"{capital} explained:", vocabulary, 150, 159, 400)
    slug = "-".join([*re.findall(r"[a-z0-9]+", keyword.lower()), "guide"])
    return {
        "title": title,
        "slug": slug,
        "meta_description": f"{meta}.",
        "outline": [line[3:] for line in body if line.startswith("## ")],
        "markdown": "\n\n".join(body),
        "faq": [
            {"question": f"What is {keyword}?", "answer": sentence()},
            {"question": "Why does it matter?", "answer": sentence()},
        ],
        "key_takeaways": [sentence(), sentence(), sentence()],
    }


def default_responder(request: dict[str, Any]) -> str:
    """Deterministic assistant text: schema-valid JSON (for the generator's post schema a post
    that meets its brief), a tagged "translation" or short markdown."""
    user_text = (_texts(request, "user") or [""])[-1]
    words = _words_of(user_text)
    fmt = request.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema") or {"type": "object"}
        if set(schema.get("properties") or {}) >= _POST_FIELDS:
            return json.dumps(fake_post(user_text), ensure_ascii=False)
        return json.dumps(fill_schema(schema, words), ensure_ascii=False)
    if isinstance(fmt, dict) and fmt.get("type") == "json_object":
        return json.dumps({"text": " ".join(words[:12])}, ensure_ascii=False)
    system_text = "\n".join(_texts(request, "system", "developer"))
    if re.search(r"translat", system_text, re.IGNORECASE):
        return fake_translation(user_text, _target_language(system_text))
    source = _WordSource(words)
    title = " ".join(w.capitalize() for w in source.take(4))
    body = " ".join(source.take(12))
    bullets = "\n".join(f"- {w}" for w in source.take(3))
    return f"## {title}\n\n{body.capitalize()}.\n\n{bullets}\n"


# --- server state -----------------------------------------------------------------------------


def count_tokens(text: str) -> int:
    """The fake tokenizer: one token per four characters, rounded up."""
    return math.ceil(len(text) / 4)


@dataclass(frozen=True)
class ServedCall:
    """One completion the fake LLM answered (and a real provider would bill)."""

    job: str | None  # header X-Seoblog-Job, else the first `job_pattern` match in the prompt
    purpose: str  # header X-Seoblog-Purpose, else the JSON schema's name, "translate" or "chat"
    fingerprint: str  # sha256 of the prompt: the same request served twice is billed twice
    tokens: int
    batched: bool = False


def request_purpose(body: dict[str, Any]) -> str:
    """What a request is for, read from the request itself (schema name or the system prompt)."""
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        name = (fmt.get("json_schema") or {}).get("name")
        if name:
            return str(name)
    if re.search(r"translat", "\n".join(_texts(body, "system", "developer")), re.IGNORECASE):
        return "translate"
    return "chat"


def request_fingerprint(body: dict[str, Any]) -> str:
    keyed = {"messages": body.get("messages"), "response_format": body.get("response_format")}
    return hashlib.sha256(json.dumps(keyed, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class _Fault:
    status: int | None  # None: hang instead of answering (or cut, below)
    retry_after: float | None = None
    cut: bool = False  # a streamed answer breaks off after a few chunks


@dataclass
class _StoredFile:
    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
        }


@dataclass
class _Batch:
    id: str
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, Any] | None
    created_at: int
    started: float
    delay_s: float
    fate: str  # "completed", "failed" or "expired", fixed when the batch is created
    status: str = "validating"
    times: dict[str, int] = field(default_factory=dict)
    output_file_id: str | None = None
    error_file_id: str | None = None
    counts: dict[str, int] = field(
        default_factory=lambda: {"total": 0, "completed": 0, "failed": 0}
    )
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "created_at": self.created_at,
            "expires_at": self.created_at + 86400,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "request_counts": dict(self.counts),
            "metadata": self.metadata,
            **{f"{name}_at": value for name, value in self.times.items()},
        }


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    kind, code = _ERROR_TYPES.get(status, ("server_error" if status >= 500 else "error", None))
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """Form fields of a multipart/form-data body: name -> (filename, bytes)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        fields[name] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
    return fields


class FakeLLM(Served):
    """A fake OpenAI-compatible server on a real socket, with run-time knobs.

    `with FakeLLM() as llm:` then `AsyncOpenAI(base_url=llm.base_url, api_key=llm.api_key)`.
    Knobs (plain attributes, settable while running): `latency_s`, `responder`,
    `batch_delay_s`, `fail_batches`, `expire_batches`, `rpm_limit` (a provider limit enforced
    per second, answered with 429 and Retry-After; `rate_limited` counts those); queued faults
    via `fail_next` and `hang_next` (they apply to POST /v1/chat/completions). `reset()`
    restores a clean state, so one server can serve a whole session.
    """

    def __init__(
        self,
        *,
        api_key: str = "sk-fake-llm",
        models: Sequence[str] = ("fake-llm",),
        responder: Responder | None = None,
        latency_s: float = 0.0,
        batch_delay_s: float = 0.0,
        hang_s: float = 30.0,
        require_auth: bool = True,
    ) -> None:
        self.api_key = api_key
        self.models = tuple(models)
        self.require_auth = require_auth
        self.hang_s = hang_s
        self._defaults = (responder or default_responder, latency_s, batch_delay_s)
        self.responder: Responder = self._defaults[0]
        self.latency_s = latency_s
        self.batch_delay_s = batch_delay_s
        self.fail_batches = False
        self.expire_batches = False
        self.rpm_limit: int | None = None
        self.rate_limited = 0
        self._allowance = (0.0, 0.0)  # tokens left and when, for rpm_limit
        self._lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        self._faults: deque[_Fault] = deque()
        self._calls = 0
        self._tokens = 0
        self._files: dict[str, _StoredFile] = {}
        self._batches: dict[str, _Batch] = {}
        self._ids = itertools.count(1)
        self._served: list[ServedCall] = []
        # Tells which job a request belongs to when the client sends no X-Seoblog-Job header.
        self.job_pattern: re.Pattern[str] | None = None
        self.fault_rate = 0.0  # share of chat completions answered with one of fault_statuses
        self.fault_statuses: tuple[int, ...] = (429, 500)
        self.down = False  # answer every chat completion 503 (an outage)
        self.refused = 0  # completions refused by fault_rate or down
        self._random = random.Random(0)
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat_completions, methods=["POST"]),
                Route("/v1/models", self._list_models, methods=["GET"]),
                Route("/v1/models/{model:path}", self._get_model, methods=["GET"]),
                Route("/v1/files", self._create_file, methods=["POST"]),
                Route("/v1/files/{file_id}", self._file, methods=["GET", "DELETE"]),
                Route("/v1/files/{file_id}/content", self._file_content, methods=["GET"]),
                Route("/v1/batches", self._create_batch, methods=["POST"]),
                Route("/v1/batches/{batch_id}", self._get_batch, methods=["GET"]),
                Route("/v1/batches/{batch_id}/cancel", self._cancel_batch, methods=["POST"]),
            ]
        )
        self.server = BackgroundServer(self.app, name="fake-llm")

    # -- lifecycle and inspection

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, such as http://127.0.0.1:41234/v1."""
        return f"{self.server.url}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Chat completion request bodies received (batch lines included), oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def calls(self) -> int:
        """Chat completions served, batch lines included; failed and hung ones excluded."""
        with self._lock:
            return self._calls

    @property
    def served(self) -> list[ServedCall]:
        """Every completion served (batch lines included), oldest first."""
        with self._lock:
            return list(self._served)

    @property
    def tokens(self) -> int:
        """Total tokens (prompt plus completion) of the completions served."""
        with self._lock:
            return self._tokens

    @property
    def batches(self) -> list[dict[str, Any]]:
        """The batches created, as the API shows them (status, request counts...)."""
        with self._lock:
            batches = list(self._batches.values())
        for batch in batches:
            self._advance(batch)
        return [batch.as_json() for batch in batches]

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        """Answer the next `times` chat completions with an error `status` (429, 500, 503...)."""
        if not 400 <= status < 600:
            raise ValueError(f"not an error status: {status}")
        with self._lock:
            self._faults.extend(_Fault(status, retry_after) for _ in range(times))

    def hang_next(self, times: int = 1) -> None:
        """Leave the next `times` chat completions unanswered (until the client gives up)."""
        with self._lock:
            self._faults.extend(_Fault(None) for _ in range(times))

    def cut_next(self, times: int = 1) -> None:
        """Break off the next `times` streamed answers after a few chunks: the connection
        closes mid-body, as a provider or proxy dropping it does (plain answers go through)."""
        with self._lock:
            self._faults.extend(_Fault(None, cut=True) for _ in range(times))

    def reset(self) -> None:
        """Forget requests, counters, queued faults, files and batches; restore the knobs."""
        with self._lock:
            self._requests.clear()
            self._faults.clear()
            self._served.clear()
            self._calls = 0
            self._tokens = 0
            self._files.clear()
            self._batches.clear()
        self.responder, self.latency_s, self.batch_delay_s = self._defaults
        self.fail_batches = False
        self.expire_batches = False
        self.rpm_limit = None
        self.rate_limited = 0
        self._allowance = (0.0, 0.0)
        self.fault_rate = 0.0
        self.down = False
        self.refused = 0

    # -- helpers

    def _over_limit(self) -> float | None:
        """Seconds to wait when rpm_limit is exceeded (a one-second bucket), else None."""
        if not self.rpm_limit:
            return None
        rate = self.rpm_limit / 60
        capacity = max(1.0, rate)
        with self._lock:
            now = time.monotonic()
            level, at = self._allowance if self._allowance[1] else (capacity, now)
            level = min(capacity, level + (now - at) * rate)
            if level >= 1:
                self._allowance = (level - 1, now)
                return None
            self._allowance = (level, now)
            self.rate_limited += 1
            return (1 - level) / rate

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}{uuid.uuid4().hex[:12]}"

    def _unauthorized(self, request: Request) -> Response | None:
        if self.require_auth and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided.")
        return None

    def _job_of(self, body: dict[str, Any], headers: Any) -> str | None:
        job = headers.get("x-seoblog-job") if headers is not None else None
        if job:
            return str(job)
        if self.job_pattern is None:
            return None
        for message in body.get("messages") or []:
            if isinstance(message, dict):
                found = self.job_pattern.search(message_text(message))
                if found:
                    return found.group(0)
        return None

    def _complete(
        self, body: dict[str, Any], headers: Any = None, *, batched: bool = False
    ) -> tuple[str, dict[str, int]]:
        """Run the responder for one request and account for it."""
        text = self.responder(body)
        prompt = sum(count_tokens(message_text(m)) for m in body.get("messages") or [])
        completion = count_tokens(text)
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        purpose = (headers.get("x-seoblog-purpose") if headers is not None else None) or (
            request_purpose(body)
        )
        served = ServedCall(
            job=self._job_of(body, headers),
            purpose=str(purpose),
            fingerprint=request_fingerprint(body),
            tokens=prompt + completion,
            batched=batched,
        )
        with self._lock:
            self._calls += 1
            self._tokens += prompt + completion
            self._served.append(served)
        return text, usage

    def _refusal(self) -> Response | None:
        """503 during an outage, or a random fault at `fault_rate`; None: answer normally."""
        with self._lock:
            if self.down:
                self.refused += 1
                return _error(503, "the fake LLM is down")
            if self.fault_rate and self._random.random() < self.fault_rate:
                self.refused += 1
                status = self._random.choice(self.fault_statuses)
                headers = {"retry-after": "0.2"} if status == 429 else None
                return _error(status, f"injected random failure {status}", headers)
        return None

    def _completion_json(
        self, body: dict[str, Any], text: str, usage: dict[str, int]
    ) -> dict[str, Any]:
        return {
            "id": self._new_id("chatcmpl"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.models[0],
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }

    # -- chat

    async def _hang(self, request: Request) -> Response:
        await self.server.wait_for_disconnect(request, self.hang_s)
        return _error(504, "the fake LLM hung on purpose")

    async def _chat_completions(self, request: Request) -> Response:
        denied = self._unauthorized(request)
        if denied:
            return denied
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "request body is not JSON")
        except ClientDisconnect:  # a client killed mid-request (chaos): nobody reads an answer
            return Response(status_code=499)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, "'messages' is required")
        wait = self._over_limit()
        if wait is not None:
            return _error(429, "rate limit reached", {"retry-after": f"{wait:.3f}"})
        refused = self._refusal()
        if refused is not None:
            return refused
        with self._lock:
            self._requests.append(body)
            fault = self._faults.popleft() if self._faults else None
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        cut = fault is not None and fault.cut
        if fault is not None and not cut:
            if fault.status is None:
                return await self._hang(request)
            headers = {}
            if fault.retry_after is not None:
                headers["retry-after"] = f"{fault.retry_after:g}"
            return _error(fault.status, f"injected failure {fault.status}", headers)
        text, usage = self._complete(body, request.headers)
        if not body.get("stream"):
            return JSONResponse(self._completion_json(body, text, usage))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        events = self._stream_events(body, text, usage if include_usage else None, cut=cut)
        return StreamingResponse(events, media_type="text/event-stream")

    async def _stream_events(
        self, body: dict[str, Any], text: str, usage: dict[str, int] | None, *, cut: bool = False
    ) -> AsyncIterator[str]:
        base = {
            "id": self._new_id("chatcmpl"),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model") or self.models[0],
            "system_fingerprint": "fp_fake",
        }

        def event(choices: list[dict[str, Any]], **extra: Any) -> str:
            return f"data: {json.dumps({**base, 'choices': choices, **extra})}\n\n"

        def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

        yield event([choice({"role": "assistant", "content": ""})])
        # Each piece's event is the same JSON around its content: encoded once, so the fake's
        # own CPU (it shares the machine with what a bench measures) stays small.
        marker = "\u0000piece\u0000"
        head, _, tail = event([choice({"content": marker})]).partition(json.dumps(marker))
        for n, piece in enumerate(p for p in re.findall(r"\S*\s*", text) if p):
            if cut and n == 3:
                # The server aborts the response: the client sees the chunked body end early.
                raise ConnectionResetError("the fake LLM cut the stream on purpose")
            yield head + json.dumps(piece) + tail
        yield event([choice({}, "stop")])
        if usage is not None:
            yield event([], usage=usage)
        yield "data: [DONE]\n\n"

    async def _list_models(self, request: Request) -> Response:
        data = [self._model_json(m) for m in self.models]
        return JSONResponse({"object": "list", "data": data})

    async def _get_model(self, request: Request) -> Response:
        model = request.path_params["model"]
        if model not in self.models:
            return _error(404, f"The model '{model}' does not exist")
        return JSONResponse(self._model_json(model))

    @staticmethod
    def _model_json(model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": 0, "owned_by": "seoblog-fake"}

    # -- files

    def _store_file(self, filename: str, purpose: str, content: bytes) -> _StoredFile:
        stored = _StoredFile(self._new_id("file"), filename, purpose, content, int(time.time()))
        with self._lock:
            self._files[stored.id] = stored
        return stored

    def _lookup_file(self, file_id: str) -> _StoredFile | None:
        with self._lock:
            return self._files.get(file_id)

    async def _create_file(self, request: Request) -> Response:
        denied = self._unauthorized(request)
        if denied:
            return denied
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return _error(400, "expected multipart/form-data")
        fields = _parse_multipart(content_type, await request.body())
        purpose = fields.get("purpose", (None, b""))[1].decode()
        filename, content = fields.get("file", (None, b""))
        if "file" not in fields or not purpose:
            return _error(400, "'file' and 'purpose' are required")
        return JSONResponse(self._store_file(filename or "upload", purpose, content).as_json())

    async def _file(self, request: Request) -> Response:
        denied = self._unauthorized(request)
        if denied:
            return denied
        file_id = request.path_params["file_id"]
        stored = self._lookup_file(file_id)
        if stored is None:
            return _error(404, f"No such File object: {file_id}")
        if request.method == "DELETE":
            with self._lock:
                self._files.pop(file_id, None)
            return JSONResponse({"id": file_id, "object": "file", "deleted": True})
        return JSONResponse(stored.as_json())

    async def _file_content(self, request: Request) -> Response:
        denied = self._unauthorized(request)
        if denied:
            return denied
        stored = self._lookup_file(request.path_params["file_id"])
        if stored is None:
            return _error(404, f"No such File object: {request.path_params['file_id']}")
        return Response(stored.content, media_type="application/octet-stream")

    # -- batches

    async def _create_batch(self, request: Request) -> Response:
        denied = self._unauthorized(request)
        if denied:
            return denied
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "request body is not JSON")
        input_file_id = body.get("input_file_id")
        if self._lookup_file(str(input_file_id)) is None:
            return _error(404, f"No such File object: {input_file_id}")
        if body.get("endpoint") != "/v1/chat/completions":
            return _error(400, "the fake LLM batches only /v1/chat/completions")
        fate = "failed" if self.fail_batches else "expired" if self.expire_batches else "completed"
        batch = _Batch(
            id=self._new_id("batch"),
            input_file_id=str(input_file_id),
            endpoint=body["endpoint"],
            completion_window=str(body.get("completion_window", "24h")),
            metadata=body.get("metadata"),
            created_at=int(time.time()),
            started=time.monotonic(),
            delay_s=self.batch_delay_s,
            fate=fate,
        )
        with self._lock:
            self._batches[batch.id] = batch
        return JSONResponse(batch.as_json())

    async def _get_batch(self, request: Request) -> Response:
        denied = self._unauthorized(request)
        if denied:
            return denied
        with self._lock:
            batch = self._batches.get(request.path_params["batch_id"])
        if batch is None:
            return _error(404, f"No such batch: {request.path_params['batch_id']}")
        self._advance(batch)
        return JSONResponse(batch.as_json())

    async def _cancel_batch(self, request: Request) -> Response:
        denied = self._unauthorized(request)
        if denied:
            return denied
        with self._lock:
            batch = self._batches.get(request.path_params["batch_id"])
        if batch is None:
            return _error(404, f"No such batch: {request.path_params['batch_id']}")
        self._advance(batch)
        if batch.status in ("validating", "in_progress"):
            now = int(time.time())
            batch.status = "cancelled"
            batch.times.update(cancelling_at=now, cancelled_at=now)
        return JSONResponse(batch.as_json())

    def _advance(self, batch: _Batch) -> None:
        """Move a batch along validating -> in_progress -> its fate, by time since creation."""
        if batch.status not in ("validating", "in_progress"):
            return
        elapsed = time.monotonic() - batch.started
        now = int(time.time())
        if batch.fate == "failed":
            if elapsed >= batch.delay_s / 2:
                batch.status = "failed"
                batch.times["failed_at"] = now
                batch.errors = [
                    {"code": "fake_failure", "message": "fail_batches is set", "line": None}
                ]
            return
        if elapsed >= batch.delay_s / 2 and batch.status == "validating":
            batch.status = "in_progress"
            batch.times["in_progress_at"] = now
        if elapsed < batch.delay_s:
            return
        if batch.fate == "expired":
            batch.status = "expired"
            batch.times["expired_at"] = now
            self._expire(batch)
            return
        batch.times["finalizing_at"] = now
        self._run_batch(batch)
        batch.status = "completed"
        batch.times["completed_at"] = now

    def _input_lines(self, batch: _Batch) -> list[dict[str, Any]]:
        stored = self._lookup_file(batch.input_file_id)
        content = stored.content if stored else b""
        lines = []
        for raw in content.decode("utf-8").splitlines():
            if raw.strip():
                try:
                    line = json.loads(raw)
                except ValueError:
                    line = {"custom_id": None, "invalid": raw}
                lines.append(line if isinstance(line, dict) else {"invalid": raw})
        return lines

    def _write_jsonl(self, batch: _Batch, kind: str, rows: list[dict[str, Any]]) -> str:
        content = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()
        return self._store_file(f"{batch.id}_{kind}.jsonl", "batch_output", content).id

    def _run_batch(self, batch: _Batch) -> None:
        outputs: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        for line in self._input_lines(batch):
            body = line.get("body")
            row_id = self._new_id("batch_req")
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                error = {"code": "invalid_request", "message": "line has no chat request body"}
                failures.append(
                    {"id": row_id, "custom_id": line.get("custom_id"), "response": None}
                    | {"error": error}
                )
                continue
            with self._lock:
                self._requests.append(body)
            text, usage = self._complete(body, batched=True)
            response = {
                "status_code": 200,
                "request_id": uuid.uuid4().hex,
                "body": self._completion_json(body, text, usage),
            }
            outputs.append(
                {
                    "id": row_id,
                    "custom_id": line.get("custom_id"),
                    "response": response,
                    "error": None,
                }
            )
        batch.counts = {
            "total": len(outputs) + len(failures),
            "completed": len(outputs),
            "failed": len(failures),
        }
        batch.output_file_id = self._write_jsonl(batch, "output", outputs)
        if failures:
            batch.error_file_id = self._write_jsonl(batch, "error", failures)

    def _expire(self, batch: _Batch) -> None:
        lines = self._input_lines(batch)
        error = {"code": "batch_expired", "message": "This request could not be executed."}
        rows = [
            {"id": self._new_id("batch_req"), "custom_id": line.get("custom_id")}
            | {"response": None, "error": error}
            for line in lines
        ]
        batch.counts = {"total": len(rows), "completed": 0, "failed": len(rows)}
        batch.error_file_id = self._write_jsonl(batch, "error", rows)
