"""On a 3-node JetStream cluster the bus declares its streams at NATS_STREAM_REPLICAS copies
and connects through whichever listed node answers."""

from __future__ import annotations

import pytest

from seoblog_runtime import Bus, ServiceSettings
from seoblog_testing import settings_for
from seoblog_testing.cluster import NatsCluster
from seoblog_testing.processes import free_port

pytestmark = pytest.mark.slow


async def test_streams_are_declared_at_the_configured_replicas_through_any_listed_node(
    service_env, tmp_path
):
    with NatsCluster(tmp_path / "nats") as cluster:
        nobody = f"nats://127.0.0.1:{free_port()}"  # listed first and down: the next must do
        settings = settings_for(
            ServiceSettings,
            service_env,
            service="probe",
            nats_url=",".join([nobody, *cluster.urls]),
            stream_replicas=3,
        )
        bus = Bus(settings)
        await bus.broker.connect()
        try:
            await bus.declare_streams()
            for name in (bus.subjects.stream, bus.subjects.dlq_stream):
                info = await bus.js.stream_info(name)
                assert info.config.num_replicas == 3
            await bus.declare_streams()  # declaring again keeps the copies
            assert (await bus.js.stream_info(bus.subjects.stream)).config.num_replicas == 3
        finally:
            await bus.stop()
