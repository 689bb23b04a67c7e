"""The seoblog CLI against the real system: the five services as processes over real NATS,
PostgreSQL and Redis, offline (no LLM), an article from the fixture site."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from seoblog_devstack import cli
from seoblog_testing import drop_namespace, env_for, unique_name
from seoblog_testing.processes import Stack, running_stack

pytestmark = pytest.mark.slow  # starts the five services

ARTICLE = "14cc2a0ca59c62a8c9f205a171e9ccf4ef4cf69b0c642f51c8c65c051b39024f"  # NASA, Europa


@pytest.fixture(scope="module")
def stack(infra: Any) -> Iterator[Stack]:
    ns = unique_name()
    with running_stack(env_for(infra, ns)) as found:
        yield found
    asyncio.run(drop_namespace(infra, ns))


@pytest.fixture(scope="module")
def submitted(stack: Stack, fixture_site: Any) -> tuple[dict[str, Any], str]:
    """One job submitted with --wait --json: the JSON document and what went to stderr
    (module-scoped, so captured by hand rather than with capsys)."""
    out, err = io.StringIO(), io.StringIO()
    argv = [
        "submit",
        fixture_site.article_url(ARTICLE),
        "--keywords",
        "water plumes",
        "--lang",
        "ko",
        "--length",
        "400",
        "--wait",
        "--json",
        "--gateway",
        stack.gateway,
    ]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    assert code == 0, (err.getvalue(), stack.logs())
    return json.loads(out.getvalue()), err.getvalue()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_submit_wait_json_prints_one_document_with_the_post_and_bars_reach_100(
    submitted: tuple[dict[str, Any], str],
) -> None:
    job, err = submitted
    assert job["state"] == "completed"
    post = job["post"]
    assert post["writer"] == "offline"
    assert (post["language"], post["requested_language"]) == ("en", "ko")
    for stage in ("crawl", "translate", "generate"):
        bar = next(line for line in err.splitlines() if line.startswith(f"{stage} "))
        assert re.search(r"\b100%", bar), err
    # The offline writer reported progress on the way: its stage's state is in the history.
    # (Not necessarily on the console: the gateway projects events that arrive together in
    # one batch, so a fast stage's live snapshot may go straight to the next state.)
    assert "generating" in [entry["state"] for entry in job["history"]], job["history"]


def test_jobs_lists_the_real_job_as_a_table_and_as_json(
    stack: Stack, submitted: tuple[dict[str, Any], str], capsys: pytest.CaptureFixture[str]
) -> None:
    job, _ = submitted
    code, out, _ = run(capsys, "jobs", "--state", "completed", "--gateway", stack.gateway)
    assert code == 0
    assert job["id"] in out
    assert "completed" in out

    code, out, _ = run(capsys, "jobs", "--limit", "5", "--json", "--gateway", stack.gateway)
    assert code == 0
    assert job["id"] in [j["id"] for j in json.loads(out)["data"]]

    code, out, _ = run(capsys, "jobs", "--state", "failed", "--json", "--gateway", stack.gateway)
    assert job["id"] not in [j["id"] for j in json.loads(out)["data"]]


def test_posts_search_and_show_find_the_real_post(
    stack: Stack, submitted: tuple[dict[str, Any], str], capsys: pytest.CaptureFixture[str]
) -> None:
    job, _ = submitted
    post_id = job["post_id"]
    code, out, _ = run(capsys, "posts", "search", "Europa", "--gateway", stack.gateway)
    assert code == 0
    assert post_id in out

    code, out, _ = run(capsys, "posts", "search", "Europa", "--json", "--gateway", stack.gateway)
    assert post_id in [p["id"] for p in json.loads(out)["data"]]

    code, out, _ = run(capsys, "posts", "show", post_id, "--gateway", stack.gateway)
    assert code == 0
    assert "language  en (asked: ko)" in out
    assert re.search(r"SEO score \d+/100", out)

    code, out, _ = run(capsys, "status", job["id"], "--json", "--gateway", stack.gateway)
    assert json.loads(out)["state"] == "completed"
