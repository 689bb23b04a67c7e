import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from seoblog_runtime import add_ops_routes


async def up() -> bool:
    return True


async def down() -> bool:
    return False


async def ready(checks) -> httpx.Response:
    app = FastAPI()
    add_ops_routes(app, CollectorRegistry(), checks)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        return await client.get("/readyz")


async def test_service_is_not_ready_without_nats_or_postgres():
    response = await ready({"nats": down, "postgres": up, "redis": up})
    assert response.status_code == 503
    assert response.json()["checks"]["nats"] is False


async def test_redis_away_is_reported_but_keeps_the_service_ready():
    response = await ready({"nats": up, "postgres": up, "redis": down})
    assert response.status_code == 200
    assert response.json() == {
        "ready": True,
        "checks": {"nats": True, "postgres": True, "redis": False},
    }
