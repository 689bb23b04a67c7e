"""The `seoblog` CLI against the real gateway: key management with the bootstrap admin key,
then submitting and cancelling with the key it made."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from gateway.app import create_app
from seoblog_devstack import cli
from seoblog_testing.processes import free_port


@pytest.fixture
def gateway_url(service_env, jobs) -> Iterator[str]:
    """The gateway under uvicorn in a thread of its own, so the synchronous CLI can call it."""
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
        assert thread.is_alive(), "the gateway stopped"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_keys_made_with_the_admin_key_work_until_revoked(gateway_url, jobs, capsys):
    admin = ["--gateway", gateway_url, "--api-key", jobs.admin_key]
    code, out, err = run(capsys, "keys", "create", "--scopes", "jobs:write,jobs:read", *admin)
    assert code == 0, err
    key = out.strip()
    assert key.startswith("sk_seo_")
    assert "shown this once" in err

    submit = ["submit", "https://example.com/a", "--lang", "ko", "--gateway", gateway_url]
    code, out, err = run(capsys, *submit, "--api-key", key)
    assert code == 0, err
    job_id = out.split()[1]
    code, out, _ = run(capsys, "cancel", job_id, "--gateway", gateway_url, "--api-key", key)
    assert (code, out.strip()) == (0, f"job {job_id} cancelled")

    code, out, _ = run(capsys, "keys", "list", *admin)
    listed = [line for line in out.splitlines() if "jobs:read,jobs:write" in line]
    assert len(listed) == 1
    assert key not in out
    key_id = listed[0].split()[0]
    code, out, _ = run(capsys, "keys", "revoke", key_id, *admin)
    assert code == 0
    assert "revoked" in out

    code, _, err = run(capsys, *submit, "--api-key", key)
    assert code == 2
    assert "invalid_api_key" in err
    code, _, err = run(capsys, *submit, "--api-key", "")
    assert code == 2
    assert "missing_api_key" in err
    code, _, err = run(capsys, "keys", "list", "--gateway", gateway_url, "--api-key", key)
    assert code == 2


def test_keys_generate_prints_a_fresh_key_without_a_gateway(capsys):
    code, first, _ = run(capsys, "keys", "generate")
    _, second, _ = run(capsys, "keys", "generate")
    assert code == 0
    assert first.startswith("sk_seo_")
    assert first != second
