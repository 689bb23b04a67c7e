"""An outside program following seoblog's jobs with plain nats-py, written from docs/events.md.

    uv run python examples/subscriber.py --follow            # live: every job's progress
    uv run python examples/subscriber.py --durable my-cms    # each finished post once

--follow uses an ordered consumer (ephemeral, no acks, deliver policy "new"): it never disturbs
seoblog's own consumers. --durable creates (or resumes) a durable pull consumer of its own on
seo.post.generated and acks each post after handling it, so a restart continues where it
stopped. --json prints one JSON object per line instead of text.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

FINISHED = {"post.generated": "completed", "job.failed": "failed", "job.cancelled": "cancelled"}
STATE_OF_STAGE = {"crawl": "crawling", "translate": "translating", "generate": "generating"}


def subject(namespace: str, tail: str) -> str:
    return f"{namespace}.seo.{tail}" if namespace else f"seo.{tail}"


def stream_name(namespace: str) -> str:
    return f"{namespace.upper()}_SEO" if namespace else "SEO"


def describe(event: dict[str, Any]) -> dict[str, Any]:
    """The few fields a person following a job wants, by the names docs/events.md gives."""
    kind = event.get("type", "")
    line: dict[str, Any] = {"job_id": event.get("job_id"), "event": kind}
    if kind == "job.submitted":
        line |= {"state": "queued", "url": event["spec"]["url"]}
    elif kind == "job.progress":
        line |= {
            "state": STATE_OF_STAGE.get(event["stage"], event["stage"]),
            "percent": event["percent"],
            "message": event.get("message", ""),
        }
    elif kind == "page.crawled":
        line |= {"done": "crawl", "title": event["title"], "language": event.get("language")}
    elif kind == "text.translated":
        line |= {"done": "translate", "translated": event["translated"]}
    elif kind == "post.generated":
        line |= {
            "state": "completed",
            "title": event["title"],
            "score": event["seo"]["score"],
            "cost_usd": event["usage"]["cost_usd"],
            "writer": event["writer"],
        }
    elif kind == "job.failed":
        line |= {"state": "failed", "stage": event["stage"], "code": event["code"]}
    elif kind == "job.cancelled":
        line |= {"state": "cancelled"}
    return line


def show(line: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
    else:
        rest = " ".join(f"{k}={v}" for k, v in line.items() if k not in ("job_id", "event"))
        sys.stdout.write(f"{str(line['job_id'])[:8]} {line['event']:<15} {rest}\n")
    sys.stdout.flush()


async def follow(nc: Any, namespace: str, jobs: int | None, as_json: bool) -> None:
    js = nc.jetstream()
    finished: set[str] = set()
    done = asyncio.Event()

    async def on_message(msg: Any) -> None:
        event = json.loads(msg.data)
        if event.get("type", "").startswith("alert."):
            return
        show(describe(event), as_json)
        if event.get("type") in FINISHED:
            finished.add(event["job_id"])
            if jobs is not None and len(finished) >= jobs:
                done.set()

    sub = await js.subscribe(
        subject(namespace, ">"),
        stream=stream_name(namespace),
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.NEW,
        cb=on_message,
    )
    show({"job_id": "-", "event": "ready", "listening": subject(namespace, ">")}, as_json)
    try:
        await done.wait()
    finally:
        await sub.unsubscribe()


async def durable(nc: Any, namespace: str, name: str, posts: int | None, as_json: bool) -> None:
    js = nc.jetstream()
    sub = await js.pull_subscribe(
        subject(namespace, "post.generated"),
        durable=name,
        stream=stream_name(namespace),
        config=ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            max_ack_pending=64,
            ack_wait=60,
        ),
    )
    seen: set[str] = set()  # delivery is at least once: dedupe on event_id
    show({"job_id": "-", "event": "ready", "consumer": name}, as_json)
    while posts is None or len(seen) < posts:
        try:
            messages = await sub.fetch(batch=16, timeout=5)
        except (TimeoutError, nats.errors.TimeoutError):
            continue
        for msg in messages:
            event = json.loads(msg.data)
            if event["event_id"] not in seen:
                seen.add(event["event_id"])
                show(describe(event), as_json)  # your program stores the post here
            await msg.ack()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--follow", action="store_true", help="every job's progress, live")
    mode.add_argument("--durable", metavar="NAME", help="each finished post once, resumable")
    parser.add_argument("--nats", default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    parser.add_argument("--namespace", default=os.environ.get("SEOBLOG_NAMESPACE", ""))
    parser.add_argument("--count", type=int, help="stop after this many finished jobs/posts")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args()
    nc = await nats.connect(args.nats)
    try:
        if args.follow:
            await follow(nc, args.namespace, args.count, args.json)
        else:
            await durable(nc, args.namespace, args.durable, args.count, args.json)
    finally:
        await nc.drain()
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(asyncio.run(main()))
    except KeyboardInterrupt:
        raise SystemExit(130) from None
