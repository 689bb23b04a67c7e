"""The `seoblog` command (typer and rich): run the stack locally, submit jobs and follow them
with a progress bar per stage, list jobs, search and read posts, manage API keys.

Every command but `up` takes `--json`: one JSON document on stdout, progress and messages on
stderr. Exit codes: 0 success, 1 the job failed or was cancelled, 2 a gateway or usage error.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from seoblog_devstack import up

DEFAULT_GATEWAY = "http://127.0.0.1:8000"
POLL_INTERVAL = 0.5
TERMINAL_STATES = ("completed", "failed", "cancelled")
STAGES = ("crawl", "translate", "generate")
STAGE_VERBS = {"crawl": "crawling", "translate": "translating", "generate": "generating"}
STATE_STAGES = {verb: stage for stage, verb in STAGE_VERBS.items()}
# Polling survives a gateway restart of a few seconds before giving up.
MAX_POLL_FAILURES = 20
KEY_PREFIX = "sk_seo_"

app = typer.Typer(
    name="seoblog",
    help="Turn a web article into an SEO blog post.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(
    help="Manage API keys (needs an admin key in --api-key / SEOBLOG_API_KEY).",
    no_args_is_help=True,
)
posts_app = typer.Typer(help="Search and read posts.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(posts_app, name="posts")

GatewayUrl = Annotated[
    str,
    typer.Option(
        "--gateway", envvar="SEOBLOG_GATEWAY", help="gateway base URL (env SEOBLOG_GATEWAY)"
    ),
]
ApiKey = Annotated[
    str | None, typer.Option("--api-key", envvar="SEOBLOG_API_KEY", help="API key (env)")
]
AsJson = Annotated[
    bool, typer.Option("--json", help="one JSON document on stdout (progress goes to stderr)")
]


class Priority(StrEnum):
    high = "high"
    normal = "normal"
    low = "low"


class PostFormat(StrEnum):
    markdown = "markdown"
    html = "html"
    json = "json"


class State(StrEnum):
    queued = "queued"
    crawling = "crawling"
    translating = "translating"
    generating = "generating"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


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


def _json(document: Any) -> None:
    _out(json.dumps(document, indent=2, ensure_ascii=False, default=str))


def _stdout() -> Console:
    """Tables on stdout; piped, they are not cut to 80 columns (ids stay whole for scripts)."""
    return Console(file=sys.stdout, width=None if sys.stdout.isatty() else 240)


def _stderr() -> Console:
    return Console(file=sys.stderr)


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

    def events(self, job_id: str) -> Iterator[dict[str, Any]]:
        """The job's snapshots as the gateway's Server-Sent Events stream them, until it ends.
        Raises GatewayError when there is no stream (an older gateway) or it breaks."""
        headers = {"Accept": "text/event-stream"}
        try:
            with self.client.stream(
                "GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=None
            ) as response:
                if response.is_error:
                    response.read()
                    raise _error_from(response)
                kind, data = "message", ""
                for line in response.iter_lines():
                    if line.startswith("event:"):
                        kind = line.removeprefix("event:").strip()
                    elif line.startswith("data:"):
                        data += line.removeprefix("data:").strip()
                    elif not line:
                        if kind == "job" and data:
                            yield json.loads(data)
                        elif kind in ("end", "error"):
                            return
                        kind, data = "message", ""
        except (httpx.TransportError, json.JSONDecodeError) as exc:
            raise GatewayError("stream_broken", str(exc)) from exc

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


class StageBars:
    """A rich progress bar per stage (percent, elapsed, ETA) on stderr, fed by job snapshots.
    Off a terminal, where bars cannot redraw, one line per change is printed as well."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[message]}"),
            console=console,
        )
        self.tasks: dict[str, TaskID] = {}
        self.last = ""

    def __enter__(self) -> StageBars:
        self.progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.progress.stop()

    def show(self, job: dict[str, Any]) -> None:
        line = progress_line(job)
        if line != self.last and not self.console.is_terminal:
            self.console.print(line, highlight=False, markup=False)
        self.last = line
        state = str(job.get("state", ""))
        progress = job.get("progress") or {}
        stage = str(progress.get("stage") or STATE_STAGES.get(state, ""))
        if state == "completed":
            for name in STAGES:
                self._set(name, 100, "done")
            return
        if stage not in STAGES:
            return
        for name in STAGES[: STAGES.index(stage)]:
            self._set(name, 100, "done")
        percent = int(progress.get("percent") or 0)
        if state in ("failed", "cancelled"):
            self._set(stage, percent, state)
        else:
            self._set(stage, percent, str(progress.get("message") or ""))

    def _set(self, stage: str, percent: int, message: str) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=100, message="")
        task = self.tasks[stage]
        if self.progress.tasks[self.tasks[stage]].completed < 100:  # never backwards to 100
            self.progress.update(task, completed=percent, message=message)
        elif message in ("failed", "cancelled"):
            self.progress.update(task, message=message)


def follow(gateway: Gateway, job: dict[str, Any], console: Console) -> dict[str, Any]:
    """Follow the job to a terminal state: live from its event stream, else by polling."""
    with StageBars(console) as bars:
        bars.show(job)
        if job.get("state") in TERMINAL_STATES:
            return job
        try:
            for snapshot in gateway.events(str(job["id"])):
                job = snapshot
                bars.show(job)
                if job.get("state") in TERMINAL_STATES:
                    return job
        except GatewayError:
            pass  # no stream here (or it broke): poll
        failures = 0
        while job.get("state") not in TERMINAL_STATES:
            time.sleep(POLL_INTERVAL)
            try:
                job = gateway.job(str(job["id"]))
                failures = 0
            except GatewayError as exc:
                if exc.code != "unreachable" or failures >= MAX_POLL_FAILURES:
                    raise
                failures += 1
                continue
            bars.show(job)
        return job


def _post_of(gateway: Gateway, job: dict[str, Any]) -> dict[str, Any]:
    """The whole post (the job carries a summary of it)."""
    post = job.get("post")
    post_id = job.get("post_id") or (post or {}).get("id")
    if post_id:
        full: dict[str, Any] = gateway.post(str(post_id), "json").json()
        return full
    return post or {}


def report_outcome(gateway: Gateway, job: dict[str, Any]) -> int:
    state = job.get("state")
    if state == "completed":
        post = _post_of(gateway, job)
        post_id = job.get("post_id") or post.get("id")
        link = (job.get("links") or {}).get("post") or f"/v1/posts/{post_id}"
        _out(f"title:     {post.get('title', '?')}")
        _out(f"SEO score: {(post.get('seo') or {}).get('score', '?')}/100")
        if post.get("language"):
            asked = post.get("requested_language")
            extra = f" (asked: {asked})" if asked and asked != post["language"] else ""
            _out(f"language:  {post['language']}{extra}")
        _out(f"read it:   {gateway.url(link)}")
        _out(f"markdown:  {gateway.url(link)}?format=markdown")
        return 0
    if state == "failed":
        _report_failure(job)
        return 1
    _err(f"job {job.get('id')} was {state}")
    return 1


def _report_failure(job: dict[str, Any]) -> None:
    error = job.get("error") or {}
    stage = f" at {error['stage']}" if error.get("stage") else ""
    _err(f"job failed{stage}: {error.get('code', '?')}: {error.get('message', '')}")
    if error.get("retryable"):
        _err("the error may be temporary: submitting again could succeed")


def _client(gateway: str, api_key: str | None) -> Gateway:
    return Gateway(gateway, api_key)


# --- commands ---------------------------------------------------------------------------


@app.command(
    "up",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def up_command(ctx: typer.Context) -> int:
    """Run the whole system on this machine (`seoblog up --help` for its options)."""
    parser = argparse.ArgumentParser(prog="seoblog up", description="Run the whole system.")
    up.add_arguments(parser)
    return up.main(parser.parse_args(ctx.args))


@app.command()
def submit(
    url: Annotated[str, typer.Argument(help="the article's URL")],
    lang: Annotated[str, typer.Option("--lang", help="target language, e.g. ko")],
    keywords: Annotated[str, typer.Option(help="comma-separated, e.g. k1,k2")] = "",
    length: Annotated[int, typer.Option(help="words")] = 800,
    priority: Annotated[Priority, typer.Option()] = Priority.normal,
    wait: Annotated[bool, typer.Option("--wait", help="follow the job until it ends")] = False,
    callback_url: Annotated[
        str | None, typer.Option(help="POSTed a signed webhook when the job ends")
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="submitting again with it returns the same job")
    ] = None,
    as_json: AsJson = False,
    gateway: GatewayUrl = DEFAULT_GATEWAY,
    api_key: ApiKey = None,
) -> int:
    """Submit an article URL; with --wait, follow it with a progress bar per stage."""
    payload: dict[str, Any] = {
        "url": url,
        "keywords": [k.strip() for k in keywords.split(",") if k.strip()],
        "target_language": lang,
        "length": length,
        "priority": priority.value,
    }
    if callback_url:
        payload["callback_url"] = callback_url
    client = _client(gateway, api_key)
    try:
        job = client.submit(payload, idempotency_key)
        say = _err if as_json else _out
        say(f"job {job.get('id')} {job.get('state')}")
        if job.get("trace_id"):
            say(f"trace {job['trace_id']}")
        if not wait:
            if as_json:
                _json(job)
            else:
                _out(f"follow it: seoblog status {job.get('id')}")
            return 0
        try:
            job = follow(client, job, _stderr())
        except KeyboardInterrupt:
            _err(f"stopped following; the job goes on: seoblog status {job.get('id')}")
            return 130
        if as_json:
            if job.get("state") == "completed":
                job = {**job, "post": _post_of(client, job)}
            elif job.get("state") == "failed":
                _report_failure(job)
            _json(job)
            return 0 if job.get("state") == "completed" else 1
        return report_outcome(client, job)
    finally:
        client.close()


@app.command()
def status(
    job_id: str,
    as_json: AsJson = False,
    gateway: GatewayUrl = DEFAULT_GATEWAY,
    api_key: ApiKey = None,
) -> int:
    """Show a job."""
    client = _client(gateway, api_key)
    try:
        job = client.job(job_id)
        if as_json:
            _json(job)
            return 0
        _out(f"job      {job.get('id')}")
        _out(f"state    {progress_line(job)}")
        spec = job.get("spec") or {}
        if spec:
            words = ", ".join(spec.get("keywords") or [])
            _out(f"url      {spec.get('url')}")
            _out(f"spec     {spec.get('target_language')}, {spec.get('length')} words, [{words}]")
        _out(f"created  {job.get('created_at')}")
        _out(f"updated  {job.get('updated_at')}")
        if job.get("trace_id"):
            _out(f"trace    {job['trace_id']}")
        if error := job.get("error"):
            _out(
                f"error    {error.get('code')}: {error.get('message')} (stage {error.get('stage')})"
            )
        post = job.get("post") or {}
        if job.get("post_id"):
            link = (job.get("links") or {}).get("post") or f"/v1/posts/{job['post_id']}"
            _out(f"post     {post.get('title', '')}".rstrip())
            _out(f"         {client.url(link)}")
        return 0
    finally:
        client.close()


@app.command()
def post(
    post_id: str,
    fmt: Annotated[PostFormat, typer.Option("--format")] = PostFormat.markdown,
    as_json: AsJson = False,
    gateway: GatewayUrl = DEFAULT_GATEWAY,
    api_key: ApiKey = None,
) -> int:
    """Print a post (markdown by default)."""
    client = _client(gateway, api_key)
    try:
        if as_json or fmt == PostFormat.json:
            _json(client.post(post_id, "json").json())
        else:
            _out(client.post(post_id, fmt.value).text.rstrip("\n"))
        return 0
    finally:
        client.close()


@app.command()
def cancel(
    job_id: str,
    as_json: AsJson = False,
    gateway: GatewayUrl = DEFAULT_GATEWAY,
    api_key: ApiKey = None,
) -> int:
    """Cancel a job."""
    client = _client(gateway, api_key)
    try:
        job = client.cancel(job_id)
        if as_json:
            _json(job)
        else:
            _out(f"job {job.get('id')} {job.get('state')}")
        return 0
    finally:
        client.close()


@app.command()
def jobs(
    state: Annotated[
        list[State] | None, typer.Option("--state", help="only jobs in this state (repeatable)")
    ] = None,
    query: Annotated[str | None, typer.Option("--query", "-q", help="keyword filter")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    as_json: AsJson = False,
    gateway: GatewayUrl = DEFAULT_GATEWAY,
    api_key: ApiKey = None,
) -> int:
    """List jobs, newest first."""
    params: dict[str, Any] = {"limit": limit, "state": [s.value for s in state or []]}
    if query:
        params["q"] = query
    client = _client(gateway, api_key)
    try:
        page = client.request("GET", "/v1/jobs", params=params).json()
    finally:
        client.close()
    if as_json:
        _json(page)
        return 0
    table = Table("id", "state", "progress", "lang", "url", "created", box=None)
    table.columns[0].no_wrap = True
    for job in page.get("data", []):
        spec = job.get("spec") or {}
        line = progress_line(job)
        table.add_row(
            str(job.get("id")),
            str(job.get("state")),
            "" if line == job.get("state") else line,
            str(spec.get("target_language", "")),
            str(spec.get("url", "")),
            str(job.get("created_at", ""))[:19],
        )
    _stdout().print(table)
    return 0


@posts_app.command("search")
def posts_search(
    query: Annotated[str, typer.Argument(help="full-text search, web-search syntax")],
    language: Annotated[str | None, typer.Option("--lang", help="only posts in it")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    as_json: AsJson = False,
    gateway: GatewayUrl = DEFAULT_GATEWAY,
    api_key: ApiKey = None,
) -> int:
    """Search posts, best match first."""
    params: dict[str, Any] = {"q": query, "limit": limit}
    if language:
        params["language"] = language
    client = _client(gateway, api_key)
    try:
        page = client.request("GET", "/v1/posts", params=params).json()
    finally:
        client.close()
    if as_json:
        _json(page)
        return 0
    table = Table("id", "score", "lang", "title", "created", box=None)
    table.columns[0].no_wrap = True
    for item in page.get("data", []):
        table.add_row(
            str(item.get("id")),
            str(item.get("seo_score", "")),
            str(item.get("language", "")),
            str(item.get("title", "")),
            str(item.get("created_at", ""))[:19],
        )
    _stdout().print(table)
    return 0


@posts_app.command("show")
def posts_show(
    post_id: str,
    as_json: AsJson = False,
    gateway: GatewayUrl = DEFAULT_GATEWAY,
    api_key: ApiKey = None,
) -> int:
    """Show a post: title, language, SEO score with its failed checks, then the markdown."""
    client = _client(gateway, api_key)
    try:
        found: dict[str, Any] = client.post(post_id, "json").json()
    finally:
        client.close()
    if as_json:
        _json(found)
        return 0
    seo = found.get("seo") or {}
    language = str(found.get("language", ""))
    asked = found.get("requested_language")
    if asked and asked != language:
        language += f" (asked: {asked})"
    _out(f"title     {found.get('title')}")
    _out(f"slug      {found.get('slug')}")
    _out(f"meta      {found.get('meta_description')}")
    _out(f"language  {language}")
    _out(f"writer    {found.get('writer')}")
    _out(f"SEO score {seo.get('score', '?')}/100")
    for reason in seo.get("reasons") or []:
        _out(f"  - {reason}")
    _out("")
    _out(str(found.get("markdown", "")).rstrip("\n"))
    return 0


def _key_line(key: dict[str, Any]) -> str:
    state = "revoked" if key.get("revoked_at") else "active"
    scopes = ",".join(key.get("scopes") or [])
    return f"{key.get('id')}  {state:<7}  {scopes:<26}  {key.get('hint')}  {key.get('name')}"


@keys_app.command("create")
def keys_create(
    scopes: Annotated[str, typer.Option(help="comma-separated: jobs:write,jobs:read,admin")],
    name: Annotated[str, typer.Option(help="what the key is for")] = "cli",
    rate: Annotated[
        float | None, typer.Option(help="requests a second (default: the gateway's)")
    ] = None,
    burst: Annotated[
        int | None, typer.Option(help="requests at once (default: the gateway's)")
    ] = None,
    as_json: AsJson = False,
    gateway: GatewayUrl = DEFAULT_GATEWAY,
    api_key: ApiKey = None,
) -> int:
    """Create a key and print it (once)."""
    body: dict[str, Any] = {
        "name": name,
        "scopes": [s.strip() for s in scopes.split(",") if s.strip()],
    }
    if rate is not None:
        body["rate_per_s"] = rate
    if burst is not None:
        body["burst"] = burst
    client = _client(gateway, api_key)
    try:
        key = client.request("POST", "/v1/keys", json=body).json()
    finally:
        client.close()
    if as_json:
        _json(key)
    else:
        _out(key["key"])
    _err(f"created {_key_line(key)}; the key is shown this once, keep it safe")
    return 0


@keys_app.command("list")
def keys_list(
    as_json: AsJson = False,
    gateway: GatewayUrl = DEFAULT_GATEWAY,
    api_key: ApiKey = None,
) -> int:
    """List keys (never the keys themselves)."""
    client = _client(gateway, api_key)
    try:
        page = client.request("GET", "/v1/keys").json()
    finally:
        client.close()
    if as_json:
        _json(page)
        return 0
    for key in page["data"]:
        _out(_key_line(key))
    return 0


@keys_app.command("revoke")
def keys_revoke(
    key_id: str,
    as_json: AsJson = False,
    gateway: GatewayUrl = DEFAULT_GATEWAY,
    api_key: ApiKey = None,
) -> int:
    """Revoke a key."""
    client = _client(gateway, api_key)
    try:
        key = client.request("DELETE", f"/v1/keys/{key_id}").json()
    finally:
        client.close()
    if as_json:
        _json(key)
    else:
        _out(f"revoked {_key_line(key)}")
    return 0


@keys_app.command("generate")
def keys_generate(
    as_json: AsJson = False,
    gateway: GatewayUrl = DEFAULT_GATEWAY,
    api_key: ApiKey = None,
) -> int:
    """Print a new random key, e.g. for GATEWAY_ADMIN_KEY (no gateway call)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    if as_json:
        _json({"key": key})
    else:
        _out(key)
    return 0


def _mount_experiments() -> None:
    """`seoblog experiments …` lives in its own module; the CLI works without it."""
    try:
        from seoblog_devstack.experiments_cli import experiments_app
    except ImportError:
        return
    app.add_typer(experiments_app, name="experiments")


_mount_experiments()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `seoblog` console script: the exit code of the command."""
    try:
        result = app(args=argv, prog_name="seoblog", standalone_mode=False)
    except GatewayError as exc:
        _err(f"error: {exc.code}: {exc.message}")
        return 2
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        return 130
    except SystemExit as exc:  # --show-completion, `up --help`: they exit on their own
        return exc.code if isinstance(exc.code, int) else 0
    except typer.TyperException as exc:  # usage errors: a missing option, a bad value
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            _err(f"error: {exc}")
        return 2
    return result if isinstance(result, int) else 0
