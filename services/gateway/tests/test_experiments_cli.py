"""`seoblog experiments` against the real gateway: create from a YAML file and from flags,
list, show the comparison table, set shares, pause, resume, promote, roll back; errors exit 2."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from typer.testing import CliRunner

from gateway.app import create_app
from seoblog_devstack.experiments_cli import experiments_app
from seoblog_testing.processes import free_port

runner = CliRunner()


@pytest.fixture
def gateway_url(service_env, jobs) -> Iterator[str]:
    app = create_app(jobs.settings(service_env))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the gateway did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)


def test_the_experiments_cli_drives_the_admin_api(gateway_url, jobs, tmp_path: Path):
    admin = ["--gateway", gateway_url, "--api-key", jobs.admin_key]

    def run(*argv: str) -> tuple[int, str]:
        result = runner.invoke(experiments_app, list(argv), env={"COLUMNS": "200"})
        return result.exit_code, result.output

    spec = tmp_path / "prompt.yaml"
    spec.write_text(
        "id: prompt-v2\n"
        "variants:\n"
        "  - name: v2\n"
        "    share: 10\n"
        "    overrides: {generator.prompt_version: post_v2}\n"
        "targeting: {priorities: [low]}\n"
    )
    code, out = run("create", "--file", str(spec), *admin)
    assert code == 0, out
    assert "prompt-v2: running (v2 10 %)" in out
    code, out = run(
        "create", "--id", "mini", "--variant", "small", "--share", "5",
        "--override", "generator.model=gpt-4o-mini", "--override", "generator.temperature=0.2",
        *admin,
    )  # fmt: skip
    assert code == 0, out
    code, out = run("list", *admin)
    assert code == 0, out
    assert "prompt-v2" in out
    assert "mini" in out
    code, out = run("show", "prompt-v2", *admin)
    assert code == 0, out
    assert "SEO score" in out
    assert "control" in out
    code, out = run("shares", "prompt-v2", "v2=25", *admin)
    assert "v2 25 %" in out
    assert run("pause", "prompt-v2", *admin)[1].startswith("prompt-v2: paused")
    assert "running" in run("resume", "prompt-v2", *admin)[1]
    assert "promoted v2" in run("promote", "prompt-v2", "v2", *admin)[1]
    assert "rolled_back" in run("rollback", "mini", "--reason", "too slow", *admin)[1]
    code, out = run("create", "--id", "bad", "--variant", "x", "--override", "nope=1", *admin)
    assert code == 2
    assert "not an override any service accepts" in out
    code, out = run("show", "missing", *admin)
    assert code == 2
    assert "experiment_not_found" in out
