"""The gateway's baseline: a bare FastAPI app doing the same essential work by hand. POST
/v1/jobs validates the job, INSERTs one row and publishes JobSubmitted to JetStream waiting for
the ack; GET /v1/jobs/{id} is one primary-key SELECT.

    python bench/perf/bare_api.py PORT   (NATS_URL, DATABASE_URL, SEOBLOG_NAMESPACE, BARE_POOL)
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import nats
import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from nats.js.api import StreamConfig

from seoblog_contracts import JobSpec, JobSubmitted

NS = os.environ["SEOBLOG_NAMESPACE"]
SCHEMA = f"{NS}_bare"
STREAM = f"{NS.upper()}_BARE"
SUBJECT = f"{NS}.bare.job.submitted"
state: dict[str, Any] = {}


async def _no_reset(conn: asyncpg.Connection) -> None:
    """The same I/O as the gateway's pool (seoblog_runtime.store._keep_session): asyncpg still
    rolls back an open transaction, but sends no RESET ALL round trip on every release."""


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    conn = await asyncpg.connect(os.environ["DATABASE_URL"])
    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"')
    await conn.execute(
        f'CREATE TABLE IF NOT EXISTS "{SCHEMA}".jobs (job_id text PRIMARY KEY, spec jsonb NOT'
        " NULL, state text NOT NULL, created_at timestamptz NOT NULL)"
    )
    await conn.close()
    pool_max = int(os.environ.get("BARE_POOL", "8"))
    state["pool"] = await asyncpg.create_pool(
        os.environ["DATABASE_URL"],
        min_size=1,
        max_size=pool_max,
        server_settings={"search_path": SCHEMA},
        reset=_no_reset,  # as the gateway's pool: no reset round trip on release
    )
    nc = await nats.connect(os.environ["NATS_URL"])
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=STREAM, subjects=[f"{NS}.bare.>"]))
    state["js"] = js
    yield
    await nc.close()
    await state["pool"].close()


app = FastAPI(lifespan=lifespan)


@app.post("/v1/jobs", status_code=202)
async def submit(spec: JobSpec) -> JSONResponse:
    event = JobSubmitted(job_id=os.urandom(16).hex(), spec=spec)
    await state["pool"].execute(
        "INSERT INTO jobs (job_id, spec, state, created_at) VALUES ($1, $2, 'queued', $3)",
        event.job_id,
        spec.model_dump_json(),
        event.occurred_at,
    )
    await state["js"].publish(
        SUBJECT, event.model_dump_json().encode(), headers={"Nats-Msg-Id": event.event_id}
    )
    return JSONResponse(
        {"id": event.job_id, "state": "queued", "links": {"self": f"/v1/jobs/{event.job_id}"}},
        status_code=202,
    )


@app.get("/v1/jobs/{job_id}")
async def status(job_id: str) -> dict[str, Any]:
    row = await state["pool"].fetchrow(
        "SELECT job_id, spec, state, created_at FROM jobs WHERE job_id = $1", job_id
    )
    if row is None:
        raise HTTPException(404)
    return {
        "id": row["job_id"],
        "spec": row["spec"],
        "state": row["state"],
        "created_at": row["created_at"],
    }


@app.get("/readyz")
async def ready() -> dict[str, str]:
    return {"status": "ready"}


if __name__ == "__main__":
    # uvicorn picks uvloop and httptools when they are installed, as the best a bare app gets.
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False)
