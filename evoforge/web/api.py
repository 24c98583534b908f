"""The JSON API under ``/api`` (its OpenAPI schema is at ``/openapi.json``, browsable at ``/docs``).

Jobs: create (a JSON object carrying the source: the API's writes take JSON only, see ``guard.py``),
list, read, cancel, and a server-sent events stream of progress. Candidates: list (sortable by a
column or a metric, filterable by status) and read one with its stages and LLM calls. The knowledge
base: built-in and learned entries.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from evoforge.store import repository
from evoforge.store.engine import Store
from evoforge.web import views
from evoforge.web.submit import Submission, submit

router = APIRouter(prefix="/api", tags=["api"])

#: seconds between database polls of the event stream
EVENT_POLL_S = 0.5


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


class JobRequest(BaseModel):
    """A job to create: the target's text and the choices the submit form offers."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field("", description="the Verilog design or KernelBench problem")
    kind: str = Field("auto", description="rtl, kernel (a KernelBench problem) or auto (by name, then text)")
    filename: str = Field("design.v", max_length=255, description="the file name it came from")
    top: str = Field("", max_length=255)
    clock: str = Field("", max_length=255)
    reset: str = Field("", max_length=255)
    objective: str = Field("area,delay", max_length=255, description="comma-separated, first is primary")
    budget: int = Field(20, ge=1)
    proposer: str = Field("auto", max_length=32, description="auto, offline, llm or mixed")
    liberty: str = Field("generic", max_length=255, description="generic or a configured liberty name")


@router.post("/jobs", status_code=201, summary="Create a job (JSON: the target's `source` and options)")
async def create_job(request: Request, job: JobRequest) -> dict[str, Any]:
    form = Submission(**job.model_dump())
    job_id = await run_in_threadpool(submit, _store(request), request.app.state.settings, form)
    return {"job_id": job_id, "status": "queued", "url": f"/jobs/{job_id}"}


@router.get("/jobs", summary="List jobs, newest first")
def list_jobs(
    request: Request, status: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> dict[str, Any]:
    with _store(request).transaction() as session:
        rows = repository.list_jobs(session, limit=limit, status=status)
        return {"jobs": [views.job_summary(j) for j in rows]}


@router.get("/jobs/{job_id}", summary="A job: report, progress, best so far, Pareto front")
def read_job(request: Request, job_id: int) -> dict[str, Any]:
    with _store(request).transaction() as session:
        return views.job_detail(session, job_id)


@router.get("/jobs/{job_id}/candidates", summary="A job's candidates (sort by column or metric)")
def list_candidates(
    request: Request,
    job_id: int,
    status: str | None = None,
    order_by: str = "id",
    limit: Annotated[int | None, Query(ge=1, le=5000)] = None,
) -> dict[str, Any]:
    from evoforge.search.report import candidate_row

    with _store(request).transaction() as session:
        repository.get_job(session, job_id)
        rows = repository.list_candidates(session, job_id, status=status, order_by=order_by, limit=limit)
        return {"job_id": job_id, "candidates": [candidate_row(c) for c in rows]}


@router.get("/jobs/{job_id}/candidates/{candidate_id}", summary="One candidate: stages, logs, LLM calls")
def read_candidate(request: Request, job_id: int, candidate_id: int) -> dict[str, Any]:
    with _store(request).transaction() as session:
        return views.candidate_detail(session, job_id, candidate_id)


@router.post("/jobs/{job_id}/cancel", summary="Cancel a job (queued: at once; running: after its round)")
def cancel_job(request: Request, job_id: int) -> dict[str, Any]:
    with _store(request).transaction() as session:
        job = repository.request_cancel(session, job_id)
        return {"job_id": job.id, "status": job.status, "cancel_requested": job.cancel_requested}


@router.get(
    "/jobs/{job_id}/events",
    summary="Server-sent events: the job's progress until it ends",
    response_class=StreamingResponse,
)
async def job_events(request: Request, job_id: int) -> StreamingResponse:
    store = _store(request)

    def snapshot() -> dict[str, Any]:
        with store.transaction() as session:
            return views.progress(session, job_id)

    first = await run_in_threadpool(snapshot)  # a missing job is a 404, not an empty stream

    async def stream() -> AsyncIterator[str]:
        payload: dict[str, Any] | None = first
        last = ""
        while True:
            if payload is None:
                payload = await run_in_threadpool(snapshot)
            text = json.dumps(payload)
            if text != last:
                yield f"event: progress\ndata: {text}\n\n"
                last = text
            if payload["done"]:
                yield f"event: end\ndata: {json.dumps({'status': payload['status']})}\n\n"
                return
            if await request.is_disconnected():
                return
            payload = None
            await asyncio.sleep(EVENT_POLL_S)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


@router.get("/kb", summary="The knowledge base: built-in and learned entries")
def knowledge_base(request: Request) -> JSONResponse:
    from evoforge.search.learned_store import open_knowledge

    kb = open_knowledge(_store(request), request.app.state.settings.data_dir)
    return JSONResponse(
        {
            "builtin": [e.row() for e in kb.filter(include_learned=False)],
            "learned": [e.row() for e in kb.filter(include_builtin=False)],
        }
    )
