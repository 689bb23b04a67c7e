import pytest
from pydantic import ValidationError

from monitor.settings import Settings


def test_settings_read_monitor_knobs_and_shared_infrastructure(monkeypatch):
    monkeypatch.setenv("MONITOR_FAILURE_RATE_THRESHOLD", "0.25")
    monkeypatch.setenv("MONITOR_ALERT_MIN_JOBS", "10")
    monkeypatch.setenv("NATS_URL", "nats://nats:4222")
    settings = Settings(_env_file=None)
    assert (settings.failure_rate_threshold, settings.alert_min_jobs) == (0.25, 10)
    assert settings.nats_url == "nats://nats:4222"
    assert (settings.service, settings.port, settings.schema_name) == ("monitor", 8004, "monitor")


def test_scrape_targets_and_webhooks_must_be_http_urls(monkeypatch):
    monkeypatch.setenv("MONITOR_SERVICES", '{"crawler": "http://crawler:8001"}')
    monkeypatch.setenv("MONITOR_ALERT_WEBHOOKS", '["https://hooks.example.com/seoblog"]')
    settings = Settings(_env_file=None)
    assert str(settings.services["crawler"]) == "http://crawler:8001/"
    assert [str(u) for u in settings.alert_webhooks] == ["https://hooks.example.com/seoblog"]
    monkeypatch.setenv("MONITOR_SERVICES", '{"crawler": "crawler:8001"}')
    with pytest.raises(ValidationError, match=r"services\.crawler"):
        Settings(_env_file=None)
