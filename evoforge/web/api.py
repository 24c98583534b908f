"""The JSON API under ``/api`` (its OpenAPI schema is at ``/openapi.json``, browsable at ``/docs``).

Jobs: create (pasted source or an uploaded file, as a form), list, read, cancel, and a server-sent
events stream of progress. Candidates: list (sortable by a column or a metric, filterable by status)
and read one with its stages and LLM calls. The knowledge base: built-in and learned entries.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

from evoforge.errors import BadInputError
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


async def read_upload(request: Request, upload: UploadFile | None) -> tuple[str, str] | None:
    """(file name, text) of an uploaded design, refused when larger than the limit or not text."""
    if upload is None or not upload.filename:
        return None
    limit = request.app.state.settings.web.max_upload_bytes
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise BadInputError(f"the uploaded file is larger than {limit} bytes")
    try:
        return upload.filename, data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInputError(
            "the uploaded file is not UTF-8 text", hint="upload Verilog source or a KernelBench .py problem"
        ) from exc


@router.post("/jobs", status_code=201, summary="Create a job (paste `source` or upload `file`)")
async def create_job(
    request: Request,
    kind: Annotated[
        str, Form(description="rtl, kernel (a KernelBench problem) or auto (by file name, then text)")
    ] = "auto",
    source: Annotated[str, Form(description="the design or KernelBench problem, pasted")] = "",
    file: Annotated[UploadFile | None, File(description="the design, uploaded")] = None,
    filename: Annotated[str, Form()] = "design.v",
    top: Annotated[str, Form()] = "",
    clock: Annotated[str, Form()] = "",
    reset: Annotated[str, Form()] = "",
    objective: Annotated[str, Form(description="comma-separated, first is primary")] = "area,delay",
    budget: Annotated[int, Form(ge=1)] = 20,
    proposer: Annotated[str, Form(description="auto, offline, llm or mixed")] = "auto",
    liberty: Annotated[str, Form(description="generic or a configured liberty name")] = "generic",
) -> dict[str, Any]:
    uploaded = await read_upload(request, file)
    if uploaded is not None:
        filename, source = uploaded
    form = Submission(
        kind=kind,
        source=source,
        filename=filename,
        top=top,
        clock=clock,
        reset=reset,
        objective=objective,
        budget=budget,
        proposer=proposer,
        liberty=liberty,
    )
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
    from evoforge.kb import KnowledgeBase, learned_path

    kb = KnowledgeBase.load(learned=learned_path(request.app.state.settings.data_dir))
    return JSONResponse(
        {
            "builtin": [e.row() for e in kb.filter(include_learned=False)],
            "learned": [e.row() for e in kb.filter(include_builtin=False)],
        }
    )
