"""The `seoblog` command: run the stack locally, submit jobs, follow them and read posts.

Exit codes: 0 success, 1 the job failed or was cancelled, 2 a gateway or usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from typing import Any

import httpx

from seoblog_devstack import up

DEFAULT_GATEWAY = "http://127.0.0.1:8000"
POLL_INTERVAL = 0.5
TERMINAL_STATES = ("completed", "failed", "cancelled")
STAGE_VERBS = {"crawl": "crawling", "translate": "translating", "generate": "generating"}
# Polling survives a gateway restart of a few seconds before giving up.
MAX_POLL_FAILURES = 20


class GatewayError(Exception):
    """The gateway answered with an error document, or could not be reached."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _out(text: str = "") -> None:
    sys.stdout.write(f"{text}\n")
    sys.stdout.flush()


def _err(text: str) -> None:
    sys.stderr.write(f"{text}\n")
    sys.stderr.flush()


class Gateway:
    """A small synchronous client of the gateway's /v1 API."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
            headers["X-API-Key"] = api_key
        self.client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.client.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise GatewayError("unreachable", f"cannot reach {self.base_url}: {exc}") from exc
        if response.is_error:
            raise _error_from(response)
        return response

    def submit(self, payload: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        job: dict[str, Any] = self.request("POST", "/v1/jobs", json=payload, headers=headers).json()
        return job

    def cancel(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self.request("POST", f"/v1/jobs/{job_id}/cancel").json()
        return job

    def job(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self.request("GET", f"/v1/jobs/{job_id}").json()
        return job

    def post(self, post_id: str, fmt: str) -> httpx.Response:
        return self.request("GET", f"/v1/posts/{post_id}", params={"format": fmt})

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"


def _error_from(response: httpx.Response) -> GatewayError:
    try:
        error = response.json().get("error") or {}
        return GatewayError(str(error["code"]), str(error.get("message", "")))
    except (ValueError, AttributeError, KeyError, TypeError):
        text = response.text.strip()[:200] or response.reason_phrase
        return GatewayError(f"http_{response.status_code}", text)


def progress_line(job: dict[str, Any]) -> str:
    """One line for a job's state, e.g. `crawling     40%  fetching page`."""
    state = str(job.get("state", "?"))
    progress = job.get("progress")
    if state in TERMINAL_STATES or not progress:
        return state
    stage = str(progress.get("stage", ""))
    label = STAGE_VERBS.get(stage, state)
    line = f"{label:<12}{int(progress.get('percent') or 0):>3}%"
    if progress.get("message"):
        line += f"  {progress['message']}"
    return line


class ProgressDisplay:
    """An updating line on a terminal; a new line per change elsewhere (logs, CI, pipes)."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.last = ""

    def show(self, line: str) -> None:
        if line == self.last:
            return
        self.last = line
        if self.tty:
            sys.stdout.write(f"\r\x1b[K{line}")
        else:
            sys.stdout.write(f"{line}\n")
        sys.stdout.flush()

    def done(self) -> None:
        if self.tty and self.last:
            sys.stdout.write("\n")
            sys.stdout.flush()


def follow(gateway: Gateway, job: dict[str, Any]) -> dict[str, Any]:
    """Poll the job every POLL_INTERVAL until it reaches a terminal state."""
    display = ProgressDisplay()
    failures = 0
    try:
        while True:
            display.show(progress_line(job))
            if job.get("state") in TERMINAL_STATES:
                return job
            time.sleep(POLL_INTERVAL)
            try:
                job = gateway.job(str(job["id"]))
                failures = 0
            except GatewayError as exc:
                if exc.code != "unreachable" or failures >= MAX_POLL_FAILURES:
                    raise
                failures += 1
    finally:
        display.done()


def report_outcome(gateway: Gateway, job: dict[str, Any]) -> int:
    state = job.get("state")
    if state == "completed":
        post = job.get("post")
        post_id = job.get("post_id") or (post or {}).get("id")
        if post is None and post_id:
            post = gateway.post(str(post_id), "json").json()
        post = post or {}
        link = (job.get("links") or {}).get("post") or f"/v1/posts/{post_id}"
        _out(f"title:     {post.get('title', '?')}")
        _out(f"SEO score: {(post.get('seo') or {}).get('score', '?')}/100")
        _out(f"read it:   {gateway.url(link)}")
        _out(f"markdown:  {gateway.url(link)}?format=markdown")
        return 0
    if state == "failed":
        error = job.get("error") or {}
        stage = f" at {error['stage']}" if error.get("stage") else ""
        _err(f"job failed{stage}: {error.get('code', '?')}: {error.get('message', '')}")
        if error.get("retryable"):
            _err("the error may be temporary: submitting again could succeed")
        return 1
    _err(f"job {job.get('id')} was {state}")
    return 1


def cmd_submit(args: argparse.Namespace, gateway: Gateway) -> int:
    keywords = [k.strip() for k in args.keywords.split(",") if k.strip()]
    payload = {
        "url": args.url,
        "keywords": keywords,
        "target_language": args.lang,
        "length": args.length,
        "priority": args.priority,
    }
    if args.callback_url:
        payload["callback_url"] = args.callback_url
    job = gateway.submit(payload, args.idempotency_key)
    _out(f"job {job.get('id')} {job.get('state')}")
    if job.get("trace_id"):
        _out(f"trace {job['trace_id']}")
    if not args.wait:
        _out(f"follow it: seoblog status {job.get('id')}")
        return 0
    try:
        job = follow(gateway, job)
    except KeyboardInterrupt:
        _err(f"stopped following; the job goes on: seoblog status {job.get('id')}")
        return 130
    return report_outcome(gateway, job)


def cmd_status(args: argparse.Namespace, gateway: Gateway) -> int:
    job = gateway.job(args.job_id)
    if args.json:
        _out(json.dumps(job, indent=2, ensure_ascii=False))
        return 0
    _out(f"job      {job.get('id')}")
    _out(f"state    {progress_line(job)}")
    spec = job.get("spec") or {}
    if spec:
        keywords = ", ".join(spec.get("keywords") or [])
        _out(f"url      {spec.get('url')}")
        _out(f"spec     {spec.get('target_language')}, {spec.get('length')} words, [{keywords}]")
    _out(f"created  {job.get('created_at')}")
    _out(f"updated  {job.get('updated_at')}")
    if job.get("trace_id"):
        _out(f"trace    {job['trace_id']}")
    if error := job.get("error"):
        _out(f"error    {error.get('code')}: {error.get('message')} (stage {error.get('stage')})")
    post = job.get("post") or {}
    if job.get("post_id"):
        link = (job.get("links") or {}).get("post") or f"/v1/posts/{job['post_id']}"
        _out(f"post     {post.get('title', '')}".rstrip())
        _out(f"         {gateway.url(link)}")
    return 0


def cmd_post(args: argparse.Namespace, gateway: Gateway) -> int:
    response = gateway.post(args.post_id, args.format)
    if args.format == "json":
        _out(json.dumps(response.json(), indent=2, ensure_ascii=False))
    else:
        _out(response.text.rstrip("\n"))
    return 0


def cmd_cancel(args: argparse.Namespace, gateway: Gateway) -> int:
    job = gateway.cancel(args.job_id)
    _out(f"job {job.get('id')} {job.get('state')}")
    return 0


KEY_PREFIX = "sk_seo_"


def _key_line(key: dict[str, Any]) -> str:
    state = "revoked" if key.get("revoked_at") else "active"
    scopes = ",".join(key.get("scopes") or [])
    return f"{key.get('id')}  {state:<7}  {scopes:<26}  {key.get('hint')}  {key.get('name')}"


def cmd_keys(args: argparse.Namespace, gateway: Gateway) -> int:
    """API keys: create, list and revoke through the admin API (an admin key in --api-key),
    or generate one locally for GATEWAY_ADMIN_KEY."""
    if args.keys_command == "generate":
        _out(KEY_PREFIX + secrets.token_urlsafe(32))
        return 0
    if args.keys_command == "create":
        body: dict[str, Any] = {
            "name": args.name,
            "scopes": [s.strip() for s in args.scopes.split(",") if s.strip()],
        }
        if args.rate is not None:
            body["rate_per_s"] = args.rate
        if args.burst is not None:
            body["burst"] = args.burst
        key = gateway.request("POST", "/v1/keys", json=body).json()
        _out(key["key"])
        _err(f"created {_key_line(key)}; the key is shown this once, keep it safe")
        return 0
    if args.keys_command == "list":
        for key in gateway.request("GET", "/v1/keys").json()["data"]:
            _out(_key_line(key))
        return 0
    key = gateway.request("DELETE", f"/v1/keys/{args.key_id}").json()
    _out(f"revoked {_key_line(key)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seoblog", description="Turn a web article into an SEO blog post."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    up_parser = commands.add_parser("up", help="run the whole system on this machine")
    up.add_arguments(up_parser)

    client = argparse.ArgumentParser(add_help=False)
    client.add_argument(
        "--gateway",
        default=os.environ.get("SEOBLOG_GATEWAY", DEFAULT_GATEWAY),
        help=f"gateway base URL (env SEOBLOG_GATEWAY, default {DEFAULT_GATEWAY})",
    )
    client.add_argument(
        "--api-key",
        default=os.environ.get("SEOBLOG_API_KEY"),
        help="API key (env SEOBLOG_API_KEY)",
    )

    submit = commands.add_parser("submit", parents=[client], help="submit an article URL")
    submit.add_argument("url")
    submit.add_argument("--keywords", default="", help="comma-separated, e.g. k1,k2")
    submit.add_argument("--lang", required=True, help="target language, e.g. ko")
    submit.add_argument("--length", type=int, default=800, help="words (default 800)")
    submit.add_argument("--priority", choices=("high", "normal", "low"), default="normal")
    submit.add_argument("--wait", action="store_true", help="follow the job until it ends")
    submit.add_argument("--callback-url", help="POSTed a signed webhook when the job ends")
    submit.add_argument("--idempotency-key", help="submitting again with it returns the same job")

    cancel = commands.add_parser("cancel", parents=[client], help="cancel a job")
    cancel.add_argument("job_id")

    keys = commands.add_parser(
        "keys", help="manage API keys (needs an admin key in --api-key / SEOBLOG_API_KEY)"
    )
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser(
        "create", parents=[client], help="create a key and print it (once)"
    )
    create.add_argument(
        "--scopes", required=True, help="comma-separated: jobs:write,jobs:read,admin"
    )
    create.add_argument("--name", default="cli", help="what the key is for")
    create.add_argument("--rate", type=float, help="requests a second (default: the gateway's)")
    create.add_argument("--burst", type=int, help="requests at once (default: the gateway's)")
    key_commands.add_parser("list", parents=[client], help="list keys (never the keys themselves)")
    revoke = key_commands.add_parser("revoke", parents=[client], help="revoke a key")
    revoke.add_argument("key_id")
    key_commands.add_parser(
        "generate",
        parents=[client],
        help="print a new random key, e.g. for GATEWAY_ADMIN_KEY (no gateway call)",
    )

    status = commands.add_parser("status", parents=[client], help="show a job")
    status.add_argument("job_id")
    status.add_argument("--json", action="store_true", help="print the job document as JSON")

    post = commands.add_parser("post", parents=[client], help="print a post")
    post.add_argument("post_id")
    post.add_argument("--format", choices=("markdown", "html", "json"), default="markdown")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `seoblog` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "up":
        return up.main(args)
    handlers = {
        "submit": cmd_submit,
        "status": cmd_status,
        "post": cmd_post,
        "cancel": cmd_cancel,
        "keys": cmd_keys,
    }
    gateway = Gateway(args.gateway, args.api_key)
    try:
        return handlers[args.command](args, gateway)
    except GatewayError as exc:
        _err(f"error: {exc.code}: {exc.message}")
        return 2
    finally:
        gateway.close()
