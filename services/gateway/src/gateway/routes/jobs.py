"""/v1/jobs: submit a job and follow it."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Response, status

from seoblog_contracts import JobSubmitted, new_event_id
from seoblog_telemetry import bind_job, current_trace_id

from ..deps import PartsDep
from ..errors import ApiError
from ..schemas import ErrorResponse, Job, JobRequest

log = logging.getLogger("gateway.jobs")
router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorResponse},
    503: {"model": ErrorResponse},
}


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Job,
    responses=_ERRORS,
    summary="Submit a job",
    description="Accepts a URL with keywords, target language, length and priority; the job "
    "runs in the background. Follow it at `links.self`.",
)
async def submit_job(request: JobRequest, parts: PartsDep, response: Response) -> Job:
    job_id = new_event_id()
    event = JobSubmitted(job_id=job_id, spec=request)
    with bind_job(job_id):
        await parts.store.create_job(
            job_id, event.spec, event.event_id, event.occurred_at, current_trace_id()
        )
        try:
            await parts.bus.publish(event)
        except Exception as exc:
            log.exception("could not publish the job")
            raise ApiError(
                503, "bus_unavailable", "The job could not be queued; please retry."
            ) from exc
        log.info("job submitted", extra={"url": str(request.url)})
    row = await parts.store.job(job_id)
    assert row is not None
    response.headers["Location"] = f"/v1/jobs/{job_id}"
    return Job.from_row(row, None)


@router.get(
    "/{job_id}",
    response_model=Job,
    responses={404: {"model": ErrorResponse}},
    summary="Get a job: state, progress, history, error, and the post when done",
)
async def get_job(job_id: str, parts: PartsDep) -> Job:
    row = await parts.store.job(job_id)
    if row is None:
        raise ApiError(404, "job_not_found", f"No job with id {job_id!r}.")
    post = await parts.store.post(row["post_id"]) if row["post_id"] else None
    return Job.from_row(row, post)
