"""The AsyncAPI 3.0 document of seoblog's events, generated from the pydantic models, so the
contract an outside subscriber reads is the one the services speak.

`python -m seoblog_contracts.asyncapi --yaml docs/asyncapi.yaml --markdown docs/events.md`
rewrites both documents; a test fails when they fall behind the models.
"""

from __future__ import annotations

import argparse
import json
import re
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

from .events import (
    EVENT_TYPES,
    SCHEMA_VERSION,
    SUPPORTED_SCHEMA_VERSIONS,
    AlertFired,
    AlertResolved,
    Event,
    ExperimentChanged,
    ExperimentRamped,
    ExperimentRolledBack,
    JobCancelled,
    JobFailed,
    JobProgress,
    JobSubmitted,
    PageCrawled,
    PostGenerated,
    TextTranslated,
)

REF = "#/components/schemas/{model}"

# Who publishes each event and which durable consumers read it inside seoblog.
PRODUCERS: dict[type[Event], tuple[str, list[str]]] = {
    JobSubmitted: ("gateway", ["crawler-crawl_page_high", "_normal", "_low"]),
    PageCrawled: ("crawler", ["translator-translate_page"]),
    TextTranslated: ("translator", ["generator-generate_post"]),
    PostGenerated: ("generator", ["gateway-project_post"]),
    JobProgress: ("crawler, translator, generator", ["gateway-project_job"]),
    JobFailed: ("crawler, translator, generator, gateway", ["gateway-project_job"]),
    JobCancelled: ("gateway", ["<stage>-note_cancelled", "gateway-project_job"]),
    AlertFired: ("monitor", []),
    AlertResolved: ("monitor", []),
    ExperimentChanged: ("gateway", ["monitor-observe_event"]),
    ExperimentRolledBack: ("monitor", ["gateway-experiment_outcome"]),
    ExperimentRamped: ("monitor", ["gateway-experiment_outcome"]),
}

SUMMARIES: dict[type[Event], str] = {
    JobSubmitted: "A job was accepted by the gateway and waits for the crawler.",
    PageCrawled: "The crawler fetched the page and extracted its article.",
    TextTranslated: "The article in the target language (or passed through when it already "
    "was), with what translating it cost.",
    PostGenerated: "The finished post: the job is completed.",
    JobProgress: (
        "How far a stage has got with a job, for live progress. A stage's first event and "
        "each new phase (the message's first word) come at once, percent updates within a "
        "phase at most every 0.5 s (<SERVICE>_PROGRESS_INTERVAL_S); published without waiting "
        "for the stream's ack, so one can be missing: the stage's result says it is done."
    ),
    JobFailed: "A stage (or the gateway) gave up on a job: the job is failed.",
    JobCancelled: "The user cancelled the job; later stages drop its events.",
    AlertFired: "The monitor raised an alert.",
    AlertResolved: "An alert the monitor raised is over.",
    ExperimentChanged: "An experiment was created or changed (shares, status, ramp step).",
    ExperimentRolledBack: "A guardrail of an experiment broke: its variants go to 0 %.",
    ExperimentRamped: "A ramp step of an experiment held: its variants move to the next step.",
}

_SPEC = {
    "url": "https://example.org/articles/europa-plumes",
    "keywords": ["Europa", "water plumes"],
    "target_language": "de",
    "length": 800,
    "priority": "normal",
    "experiments": [
        {
            "experiment_id": "prompt-v2",
            "variant": "v2",
            "overrides": {"generator.prompt_version": "post_v2"},
        }
    ],
}
_USAGE = {"prompt_tokens": 1840, "completion_tokens": 1210, "calls": 2, "cost_usd": 0.00211}
_COMMON = {
    "event_id": "4c1f0b7f6a8e4a3e9d2b5c6a7e8f9012",
    "job_id": "0b6f6f1a2c3d4e5f8a9b0c1d2e3f4a5b",
    "occurred_at": "2026-12-01T12:00:00.000000Z",
    "schema_version": SCHEMA_VERSION,
}
EXAMPLES: dict[type[Event], dict[str, Any]] = {
    JobSubmitted: {"type": "job.submitted", "spec": _SPEC},
    PageCrawled: {
        "type": "page.crawled",
        "spec": _SPEC,
        "url": _SPEC["url"],
        "final_url": _SPEC["url"],
        "title": "Hubble sees water plumes on Europa",
        "text": "NASA's Hubble Space Telescope has seen evidence of water vapour...",
        "language": "en",
        "content_hash": "9f2c...e1",
        "metadata": {"author": "NASA", "date": "2026-11-30"},
        "from_cache": False,
    },
    TextTranslated: {
        "type": "text.translated",
        "spec": _SPEC,
        "source_url": _SPEC["url"],
        "title": "Hubble sieht Wasserfontänen auf Europa",
        "text": "Das Hubble-Weltraumteleskop der NASA hat Hinweise auf Wasserdampf...",
        "source_language": "en",
        "target_language": "de",
        "translated": True,
        "note": "",
        "content_hash": "9f2c...e1",
        "usage": {"prompt_tokens": 900, "completion_tokens": 850, "calls": 1, "cost_usd": 0.001},
    },
    PostGenerated: {
        "type": "post.generated",
        "post_id": "7d0e6f1a2c3d4e5f8a9b0c1d2e3f4a5b",
        "source_url": _SPEC["url"],
        "language": "de",
        "title": "Wasserfontänen auf Europa: was Hubble entdeckt hat",
        "slug": "wasserfontaenen-europa-hubble",
        "meta_description": "Hubble hat Wasserfontänen auf Europa gesehen: wie, und was das "
        "über den Ozean unter dem Eis verrät.",
        "markdown": "# Wasserfontänen auf Europa\n\n...",
        "html": "<article><h1>Wasserfontänen auf Europa</h1>...</article>",
        "keywords": ["Europa", "water plumes"],
        "seo": {"score": 92, "checks": {"keyword_in_title": True}, "reasons": []},
        "writer": "llm:gpt-4o-mini",
        "usage": _USAGE,
        "revised": False,
        "experiments": _SPEC["experiments"],
    },
    JobProgress: {"type": "job.progress", "stage": "generate", "percent": 40, "message": "writing"},
    JobFailed: {
        "type": "job.failed",
        "stage": "crawl",
        "code": "http_404",
        "message": "The page answered 404 Not Found.",
        "retryable": False,
    },
    JobCancelled: {"type": "job.cancelled", "reason": "cancelled by the user"},
    AlertFired: {
        "type": "alert.fired",
        "job_id": "",
        "alert": "failure_rate",
        "severity": "warning",
        "summary": "12 % of jobs failed in the last 5 minutes",
        "value": 0.12,
    },
    AlertResolved: {
        "type": "alert.resolved",
        "job_id": "",
        "alert": "failure_rate",
        "summary": "failure rate back to 1 %",
    },
    ExperimentChanged: {
        "type": "experiment.changed",
        "job_id": "",
        "experiment_id": "prompt-v2",
        "status": "running",
        "version": 3,
        "definition": {"id": "prompt-v2", "status": "running", "variants": []},
    },
    ExperimentRolledBack: {
        "type": "experiment.rolled_back",
        "job_id": "",
        "experiment_id": "prompt-v2",
        "variant": "v2",
        "reason": "seo_score 61.2 is below control 78.4 - 5 (n 24 and 120)",
        "figures": {"metric": "seo_score", "control": 78.4, "variant": 61.2},
    },
    ExperimentRamped: {
        "type": "experiment.ramped",
        "job_id": "",
        "experiment_id": "prompt-v2",
        "step": 2,
        "share": 50.0,
        "figures": {"jobs": 40},
    },
}

# What each field means, for fields whose model does not say it itself. Keyed by model name;
# "*" applies to every model. A test fails when a field of an event has no description.
FIELD_DOCS: dict[str, dict[str, str]] = {
    "*": {
        "event_id": "Unique id of this event, also its Nats-Msg-Id. Stage outputs have "
        "deterministic ids (one per job and kind), so a redelivery repeats the same id.",
        "job_id": "The job this event belongs to (the id the gateway's API returns).",
        "occurred_at": "When the event happened (UTC, ISO 8601).",
        "schema_version": "Version of this event's schema; consumers refuse versions they do "
        "not support.",
        "type": "The event's kind, equal to its subject without the `seo.` prefix (and "
        "without the priority for job.submitted).",
        "spec": "What the user asked for; travels with the job through every stage.",
    },
    "PageCrawled": {
        "url": "The URL the job asked for.",
        "final_url": "Where the page was found after redirects.",
        "title": "The article's title.",
        "language": "Language detected on the page (ISO 639-1), when known.",
        "content_hash": "sha256 of the extracted text: equal text, equal hash.",
        "metadata": "What the page says about itself: author, date, site name, description, "
        "near-duplicate and conditional re-crawl notes.",
        "from_cache": "True when the page came from the crawler's cache instead of a fetch.",
    },
    "TextTranslated": {
        "source_url": "The page the text came from.",
        "title": "The title in the target language.",
        "text": "The article body (markdown) in the target language.",
        "source_language": "The language the page was written in, when detected.",
        "target_language": "The language the job asked for (ISO 639).",
        "translated": "False when the text passed through untranslated (already in the "
        "target language, or no LLM configured); `note` then says why.",
        "note": "Why the text was passed through, if it was.",
        "content_hash": "The crawled text's content_hash.",
        "usage": "What translating cost (tokens, calls, USD).",
    },
    "PostGenerated": {
        "post_id": "The post's id (GET /v1/posts/{post_id}); one post per job.",
        "source_url": "The page the post was written from.",
        "language": "The language the post is written in.",
        "title": "The post's title (H1 and <title>).",
        "slug": "URL slug for the post.",
        "meta_description": "The meta description (about 120-160 characters).",
        "markdown": "The post as markdown.",
        "html": "The post as sanitised HTML with schema.org JSON-LD.",
        "keywords": "The keywords the post was optimised for.",
        "seo": "The SEO report: `score` 0-100, each check, and the reasons for lost points.",
    },
    "JobProgress": {
        "stage": "The stage working on the job: crawl, translate or generate.",
        "percent": "How far the stage has got, 0-100.",
        "message": "What the stage is doing (fetching, translating 3/7, writing, revising).",
    },
    "JobFailed": {
        "stage": "Where the job failed: crawl, translate, generate, or gateway.",
        "code": "A stable error code (http_404, blocked_address, no_article, llm_timeout, ...).",
        "message": "What went wrong, for people.",
        "retryable": "True when submitting the job again may succeed.",
    },
    "JobCancelled": {"reason": "Why the job was cancelled."},
    "AlertFired": {
        "job_id": "Empty: alerts concern the system, not one job.",
        "alert": "The alert's name (stable).",
        "severity": "info, warning or critical.",
        "summary": "What is wrong, for people.",
        "value": "The figure that crossed the threshold, when there is one.",
    },
    "ExperimentChanged": {
        "job_id": "Empty: experiment events concern many jobs.",
        "experiment_id": "The experiment's id.",
        "status": "running, paused, promoted or rolled_back.",
    },
    "ExperimentRolledBack": {
        "job_id": "Empty: experiment events concern many jobs.",
        "experiment_id": "The experiment's id.",
        "variant": "The variant whose guardrail broke.",
        "reason": "Which rule broke, with the figures, for people.",
    },
    "ExperimentRamped": {
        "job_id": "Empty: experiment events concern many jobs.",
        "experiment_id": "The experiment's id.",
    },
    "Assignment": {
        "experiment_id": "The experiment.",
        "variant": "The variant the job is in (the control too).",
        "overrides": "Settings the stages use for this job instead of their own "
        "(`generator.prompt_version`, `generator.model`, `translator.model`, ...).",
    },
    "AlertResolved": {
        "job_id": "Empty: alerts concern the system, not one job.",
        "alert": "The name of the alert that is over.",
        "summary": "What it is now, for people.",
    },
    "JobSpec": {
        "url": "The article to turn into a post (http or https).",
        "keywords": "Up to 20 keywords to optimise for.",
        "target_language": "The post's language (ISO 639).",
        "priority": "high, normal or low: the crawler serves high first, low never starves.",
    },
    "Usage": {
        "prompt_tokens": "Input tokens billed.",
        "completion_tokens": "Output tokens billed.",
        "calls": "Paid LLM calls.",
        "cost_usd": "Cost in US dollars at the configured prices.",
    },
    "SeoReport": {
        "score": "0-100.",
        "checks": "Each check by name, passed or not.",
        "reasons": "Why points were lost, one sentence each.",
    },
}

HEADERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "Nats-Msg-Id": {
            "type": "string",
            "description": "The event's event_id. JetStream drops a second publish with the "
            "same id within the stream's 120 s duplicate window; past it, dedupe on event_id.",
        },
        "traceparent": {
            "type": "string",
            "description": "W3C trace context of the job's trace (one trace per job).",
            "examples": ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
        },
        "tracestate": {"type": "string", "description": "W3C trace state, when present."},
        "Seoblog-Signature": {
            "type": "string",
            "description": "v1=<hex HMAC-SHA256 of the message body> under the deployment's "
            "SEOBLOG_EVENT_KEY. seoblog's consumers refuse (dead-letter) events without a "
            "valid one; an outside subscriber may verify it if it holds the key.",
        },
    },
    "required": ["Nats-Msg-Id"],
}

DESCRIPTION = f"""\
Every event seoblog publishes on NATS JetStream, one message per event, JSON encoded (UTF-8).

**Streams.** Events live in the stream `SEO` (subjects `seo.job.>`, `seo.page.>`, `seo.text.>`,
`seo.post.>`, `seo.alert.>`, `seo.experiment.>`; file storage, bounded age). Dead letters
live in `SEO_DLQ` (`seo.dlq.>`), each with the headers `Seoblog-Dlq-Reason`, `Seoblog-Dlq-Consumer`,
`Seoblog-Dlq-Subject` and `Seoblog-Dlq-Deliveries`. A deployment's `SEOBLOG_NAMESPACE` prefixes
every subject (`<ns>.seo.…`) and stream (`<NS>_SEO`); the default namespace is empty.

**How an outside program should subscribe.** Never join seoblog's own durable consumers (their
names are listed per message as `x-consumers`): a second reader on a durable steals its
messages. Instead:
- to watch live (a dashboard, a log): an *ordered consumer* (ephemeral, flow-controlled,
  no acks) on `seo.>` with deliver policy `new`; in nats-py
  `js.subscribe("seo.>", ordered_consumer=True, deliver_policy=DeliverPolicy.NEW)`.
- to process every event exactly once in your own program (a CMS import, a webhook relay): a
  *durable pull consumer of your own* on the `SEO` stream, named after your program, with a
  `filter_subject` (e.g. `seo.post.generated`), deliver policy `all` (or `by_start_time`),
  `ack_policy: explicit`, and a bounded `max_ack_pending`. Ack a message after you have
  stored its effect; an unacked message is redelivered after `ack_wait`. Delivery is at least
  once: deduplicate on `event_id` (stage outputs have deterministic ids, one per job and
  kind).
`examples/subscriber.py` in the repository does both with plain nats-py.

**Job states.** A job moves `queued → crawling → translating → generating → completed`, or ends
`failed` or `cancelled`. Stages are named `crawl`, `translate`, `generate` in `seo.job.progress`
and `seo.job.failed`; the state of a job in stage X is the `-ing` form (`crawl` → `crawling`).
A job is finished when you see `seo.post.generated` (completed; the post's SEO score is
`seo.score`, its cost `usage.cost_usd` for the whole job), `seo.job.failed` or
`seo.job.cancelled`.

**Schema versions.** Every event has `schema_version` (now {SCHEMA_VERSION}; consumers accept
{sorted(SUPPORTED_SCHEMA_VERSIONS)}). Adding an optional field is a compatible change within a
version, so ignore fields you do not know. Removing or changing the meaning of a field bumps
the version; producers then publish the new version only after every consumer accepts it.
seoblog's consumers dead-letter any version they do not support instead of guessing.
"""


def _title(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", " ", name)


def _channel_id(model: type[Event]) -> str:
    head, tail = model.subject_suffix.split(".")
    return head + tail.capitalize()


def _address(model: type[Event]) -> str:
    if model is JobSubmitted:
        return "seo.job.submitted.{priority}"
    return f"seo.{model.subject_suffix}"


def _example(model: type[Event]) -> dict[str, Any]:
    """The example, validated by the model so it cannot drift from it."""
    payload = _COMMON | EXAMPLES[model]
    model.model_validate(payload)
    return payload


def schemas() -> dict[str, Any]:
    """JSON Schema of every event (and what they share) under components/schemas."""
    _, top = models_json_schema(
        [(m, "validation") for m in EVENT_TYPES], ref_template=REF, title="seoblog events"
    )
    defs: dict[str, Any] = top.get("$defs", {})
    for name, schema in defs.items():
        docs = FIELD_DOCS["*"] | FIELD_DOCS.get(name, {})
        for field, prop in schema.get("properties", {}).items():
            if field in docs and "description" not in prop:
                prop["description"] = docs[field]
    for model in EVENT_TYPES:
        schema = defs[model.__name__]
        schema["description"] = SUMMARIES[model] + (
            f"\n\n{model.__doc__.strip()}"
            if model.__doc__ and model.__doc__ != Event.__doc__
            else ""
        )
        for name, field in model.model_fields.items():
            if field.description and name in schema.get("properties", {}):
                schema["properties"][name].setdefault("description", field.description)
        schema["examples"] = [_example(model)]
    return dict(sorted(defs.items()))


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document."""
    try:
        version = metadata.version("seoblog-contracts")
    except metadata.PackageNotFoundError:
        version = "0.0.0"
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for model in EVENT_TYPES:
        name = model.__name__
        channel = _channel_id(model)
        producer, consumers = PRODUCERS[model]
        messages[name] = {
            "name": name,
            "title": _title(name),
            "summary": SUMMARIES[model],
            "contentType": "application/json",
            "headers": {"$ref": "#/components/schemas/Headers"},
            "payload": {"$ref": REF.format(model=name)},
            "examples": [
                {
                    "name": f"{name}Example",
                    "headers": {"Nats-Msg-Id": _COMMON["event_id"]},
                    "payload": _example(model),
                }
            ],
            "x-producer": producer,
            "x-consumers": consumers,
        }
        entry: dict[str, Any] = {
            "address": _address(model),
            "description": f"{SUMMARIES[model]} Published by {producer}.",
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
        if model is JobSubmitted:
            entry["parameters"] = {
                "priority": {
                    "enum": ["high", "normal", "low"],
                    "default": "normal",
                    "description": "The job's priority; subscribe to `seo.job.submitted.*` "
                    "for all of them. The crawler serves high before normal before low "
                    "without starving low.",
                }
            }
        channels[channel] = entry
        operations[f"publish{name}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel}"},
            "summary": f"{producer} publishes {name}.",
            "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"}],
        }
    channels["deadLetters"] = {
        "address": "seo.dlq.{subject}",
        "description": "A copy of a message that could not be handled (malformed, unsigned, "
        "an unsupported schema_version, or failed on its last delivery), in stream SEO_DLQ, "
        "once per consumer that gave up on it. The body is the original message's; the "
        "headers say why.",
        "parameters": {
            "subject": {"description": "The original subject without its `seo.` prefix."}
        },
        "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
    }
    messages["DeadLetter"] = {
        "name": "DeadLetter",
        "title": "Dead letter",
        "summary": "The original message body, kept with the reason it was refused.",
        "contentType": "application/octet-stream",
        "headers": {
            "type": "object",
            "properties": {
                "Seoblog-Dlq-Reason": {"type": "string"},
                "Seoblog-Dlq-Consumer": {"type": "string"},
                "Seoblog-Dlq-Subject": {"type": "string"},
                "Seoblog-Dlq-Deliveries": {"type": "string"},
            },
        },
        "payload": {"type": "string", "description": "the original body, as it came"},
    }
    operations["publishDeadLetter"] = {
        "action": "send",
        "channel": {"$ref": "#/channels/deadLetters"},
        "summary": "Any consumer dead-letters a message it refuses.",
        "messages": [{"$ref": "#/channels/deadLetters/messages/DeadLetter"}],
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "seoblog events",
            "version": version,
            "description": DESCRIPTION,
            "license": {"name": "MIT"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:4222",
                "protocol": "nats",
                "description": "NATS with JetStream, as `make up` runs it (stream SEO).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": {"Headers": HEADERS} | schemas(),
            "messages": messages,
        },
    }


def _field_rows(schema: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    rows = []
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        kind = prop.get("type") or (
            prop["$ref"].rsplit("/", 1)[-1]
            if "$ref" in prop
            else "/".join(
                str(p.get("type") or p.get("$ref", "").rsplit("/", 1)[-1] or p.get("const", ""))
                for p in prop.get("anyOf", [])
            )
        )
        if "const" in prop:
            kind = f'"{prop["const"]}"'
        if "enum" in prop:
            kind = " \\| ".join(f"`{v}`" for v in prop["enum"])
        note = prop.get("description", "").replace("\n", " ")
        rows.append(f"| `{name}` | {kind} | {'yes' if name in required else ''} | {note} |")
    return rows


def markdown() -> str:
    """The generated part of docs/events.md: one section per event with its fields."""
    defs = schemas()
    out = [
        "<!-- generated by `python -m seoblog_contracts.asyncapi`; do not edit by hand -->",
        "",
    ]
    for model in EVENT_TYPES:
        name = model.__name__
        producer, consumers = PRODUCERS[model]
        out += [
            f"### `{_address(model)}` — {name}",
            "",
            SUMMARIES[model]
            + f" Published by {producer}."
            + (f" Read inside seoblog by `{', '.join(consumers)}`." if consumers else ""),
            "",
            "| field | type | required | meaning |",
            "|---|---|---|---|",
            *_field_rows(defs[name], defs),
            "",
            "```json",
            json.dumps(_example(model), indent=2, ensure_ascii=False),
            "```",
            "",
        ]
    for shared in ("JobSpec", "Usage", "SeoReport"):
        if shared in defs:
            out += [
                f"### {shared}",
                "",
                "| field | type | required | meaning |",
                "|---|---|---|---|",
                *_field_rows(defs[shared], defs),
                "",
            ]
    return "\n".join(out)


BEGIN, END = "<!-- events:begin -->", "<!-- events:end -->"


def render_yaml() -> str:
    import yaml

    class Dumper(yaml.SafeDumper):  # type: ignore[misc]
        pass

    def text(dumper: Any, value: str) -> Any:
        style = "|" if "\n" in value else None  # multi-line descriptions stay readable
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return str(yaml.dump(document(), Dumper=Dumper, sort_keys=False, allow_unicode=True, width=100))


def splice(text: str, generated: str) -> str:
    """Put `generated` between the markers of a hand-written page."""
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{generated}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--yaml", type=Path, help="write the AsyncAPI document here")
    parser.add_argument("--json", type=Path, help="write it as JSON here")
    parser.add_argument("--markdown", type=Path, help="refresh the generated part of this page")
    args = parser.parse_args(argv)
    if args.yaml:
        args.yaml.write_text(render_yaml(), encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(document(), indent=2, ensure_ascii=False) + "\n")
    if args.markdown:
        args.markdown.write_text(splice(args.markdown.read_text(encoding="utf-8"), markdown()))
    return 0


__all__ = ["document", "markdown", "render_yaml", "schemas", "splice"]

if __name__ == "__main__":
    raise SystemExit(main())
