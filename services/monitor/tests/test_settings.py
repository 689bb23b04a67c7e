from monitor.settings import Settings


def test_settings_read_monitor_knobs_and_shared_infrastructure(monkeypatch):
    monkeypatch.setenv("MONITOR_FAILURE_RATE_THRESHOLD", "0.25")
    monkeypatch.setenv("MONITOR_ALERT_MIN_JOBS", "10")
    monkeypatch.setenv("NATS_URL", "nats://nats:4222")
    settings = Settings(_env_file=None)
    assert (settings.failure_rate_threshold, settings.alert_min_jobs) == (0.25, 10)
    assert settings.nats_url == "nats://nats:4222"
    assert (settings.service, settings.port, settings.schema_name) == ("monitor", 8004, "monitor")
