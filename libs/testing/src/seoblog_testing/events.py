"""Record the events a test's namespace carries, straight off NATS, to assert on outcomes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from seoblog_contracts import Subjects


@dataclass
class Recorded:
    subject: str
    data: dict[str, Any] | None
    raw: bytes
    headers: dict[str, str]


@dataclass
class EventRecorder:
    subjects: Subjects
    seen: list[Recorded] = field(default_factory=list)
    _subs: list[Subscription] = field(default_factory=list)

    async def start(self, nc: NatsClient) -> None:
        async def on_msg(msg: Msg) -> None:
            try:
                data = json.loads(msg.data)
            except ValueError:
                data = None
            self.seen.append(Recorded(msg.subject, data, msg.data, dict(msg.headers or {})))

        self._subs.append(await nc.subscribe(f"{self.subjects.root}.>", cb=on_msg))

    async def stop(self) -> None:
        for sub in self._subs:
            await sub.unsubscribe()

    def of(self, suffix: str, job_id: str | None = None) -> list[Recorded]:
        """Events whose subject ends with `suffix` (e.g. 'page.crawled'), for one job if given."""
        return [
            r
            for r in self.seen
            if r.subject.endswith(suffix)
            and (job_id is None or (r.data or {}).get("job_id") == job_id)
        ]


def signed_headers(
    body: bytes, *, key: str | None = None, msg_id: str | None = None, **extra: str
) -> dict[str, str]:
    """Headers for an event published by hand (plain nats-py), signed as the bus signs them:
    with the session's key unless `key` is given."""
    from seoblog_contracts import SIGNATURE_HEADER, sign

    from .plugin import EVENT_KEY

    headers = {SIGNATURE_HEADER: sign((key or EVENT_KEY).encode(), body), **extra}
    if msg_id is not None:
        headers["Nats-Msg-Id"] = msg_id
    return headers
