"""Issue 12.3: open mode (no keys, every caller is admin) is refused on an address other
machines can reach, unless forced, and then it says so loudly."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from gateway.app import create_app
from gateway.settings import OpenModeRefused

ANY = "0.0.0.0"  # noqa: S104 - the address under test, never bound


@pytest.mark.parametrize("host", [ANY, "::", "192.168.1.5", "gateway.internal"])
def test_open_mode_on_a_reachable_address_refuses_to_start(service_env, jobs, host):
    settings = jobs.settings(service_env, open_mode=True, host=host)
    with pytest.raises(OpenModeRefused, match="GATEWAY_OPEN_MODE_FORCE"):
        create_app(settings)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_open_mode_on_loopback_starts(service_env, jobs, host):
    create_app(jobs.settings(service_env, open_mode=True, host=host))


def test_keys_on_any_address_start(service_env, jobs):
    create_app(jobs.settings(service_env, open_mode=False, host=ANY))


def test_forced_open_mode_starts_with_a_loud_warning(service_env, jobs, caplog):
    settings = jobs.settings(service_env, open_mode=True, host=ANY, open_mode_force=True)
    with caplog.at_level(logging.WARNING, logger="gateway.app"):
        create_app(settings)
    warned = [r for r in caplog.records if r.name == "gateway.app"]
    assert warned
    assert warned[0].levelno == logging.WARNING
    assert "OPEN MODE" in warned[0].getMessage()


def test_the_gateway_process_exits_with_the_reason_instead_of_serving(service_env):
    env = service_env | {"GATEWAY_OPEN_MODE": "1", "GATEWAY_HOST": ANY, "GATEWAY_PORT": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "gateway"], env=env, capture_output=True, timeout=60, check=False
    )
    assert done.returncode != 0
    assert b"GATEWAY_OPEN_MODE_FORCE" in done.stderr + done.stdout
