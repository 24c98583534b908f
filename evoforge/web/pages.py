"""Server-rendered pages: the jobs list with the submit form, a job, a candidate, the knowledge base.

Jinja2 with autoescape; charts are inline SVG and source is highlighted on the server
(``charts.py``, ``highlight.py``), so the pages need only the small vendored CSS and JS.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment
from markupsafe import escape

from evoforge.domain import Metrics
from evoforge.errors import BadInputError
from evoforge.store import repository
from evoforge.store.engine import Store
from evoforge.web import charts, views
from evoforge.web.api import read_upload
from evoforge.web.app import TOKEN_HINT, token_ok
from evoforge.web.highlight import diff_html, highlight_verilog
from evoforge.web.submit import KINDS, PROPOSERS, Submission, liberty_choices, submit

router = APIRouter(include_in_schema=False)


def _render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    templates: Environment = request.app.state.templates
    context |= {"request": request, "require_token": request.app.state.require_token}
    return HTMLResponse(templates.get_template(name).render(**context), status_code=status_code)


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _jobs_page(request: Request, *, form: Submission | None = None, error: str | None = None) -> HTMLResponse:
    settings = request.app.state.settings
    with _store(request).transaction() as session:
        jobs = [views.job_summary(j) for j in repository.list_jobs(session, limit=100)]
    return _render(
        request,
        "jobs.html",
        status_code=422 if error else 200,
        jobs=jobs,
        form=form or Submission(budget=settings.search.budget),
        error=error,
        proposers=PROPOSERS,
        kinds=KINDS,
        liberties=liberty_choices(settings),
        max_budget=settings.web.max_budget,
    )


@router.get("/", response_class=HTMLResponse)
def jobs_page(request: Request) -> HTMLResponse:
    return _jobs_page(request)


@router.post("/jobs", response_model=None)
async def submit_form(
    request: Request,
    source: Annotated[str, Form()] = "",
    file: Annotated[UploadFile | None, File()] = None,
    kind: Annotated[str, Form()] = "auto",
    top: Annotated[str, Form()] = "",
    objective: Annotated[str, Form()] = "area,delay",
    budget: Annotated[int, Form()] = 20,
    proposer: Annotated[str, Form()] = "auto",
    liberty: Annotated[str, Form()] = "generic",
    token: Annotated[str, Form()] = "",
) -> Response:
    form = Submission(
        kind=kind,
        source=source,
        top=top,
        objective=objective,
        budget=budget,
        proposer=proposer,
        liberty=liberty,
    )
    if not token_ok(request, token):
        return _jobs_page(request, form=form, error=f"this server needs a token for writes ({TOKEN_HINT})")
    try:
        uploaded = await read_upload(request, file)
        if uploaded is not None:
            form = Submission(
                kind=kind,
                source=uploaded[1],
                filename=uploaded[0],
                top=top,
                objective=objective,
                budget=budget,
                proposer=proposer,
                liberty=liberty,
            )
        job_id = await run_in_threadpool(submit, _store(request), request.app.state.settings, form)
    except BadInputError as exc:
        message = exc.message + (f" — {exc.hint}" if exc.hint else "")
        return await run_in_threadpool(lambda: _jobs_page(request, form=form, error=message))
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: int) -> HTMLResponse:
    with _store(request).transaction() as session:
        job = views.job_detail(session, job_id)
    progress = job["progress"]
    baseline = Metrics.from_dict(job["baseline"]["metrics"])
    primary = progress["primary_objective"]
    original_id = next((p["candidate_id"] for p in job["accepted_points"] if p["origin"] == "original"), None)
    front_ids = {row["candidate_id"] for row in job["pareto_front"]}
    leaderboard = sorted(
        (c for c in job["candidates"] if c["status"] == "accepted" and c["metrics"].get(primary) is not None),
        key=lambda c: (c["metrics"][primary], c["id"]),
    )[:20]
    return _render(
        request,
        "job.html",
        job=job,
        progress=progress,
        best_chart=charts.best_so_far_chart(job["best_so_far"], baseline.to_dict().get(primary), primary),
        pareto_chart=charts.pareto_chart(
            job["accepted_points"],
            front_ids,
            "area_um2",
            "delay_ns",
            original_id,
            f"/jobs/{job_id}/candidates/{{cid}}",
        ),
        leaderboard=leaderboard,
        primary=primary,
    )


@router.post("/jobs/{job_id}/cancel", response_model=None)
def cancel_form(request: Request, job_id: int, token: Annotated[str, Form()] = "") -> Response:
    if not token_ok(request, token):
        raise BadInputError("this server needs a token for writes", hint=TOKEN_HINT)
    with _store(request).transaction() as session:
        repository.request_cancel(session, job_id)
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)


@router.get("/jobs/{job_id}/candidates/{candidate_id}", response_class=HTMLResponse)
def candidate_page(request: Request, job_id: int, candidate_id: int) -> HTMLResponse:
    with _store(request).transaction() as session:
        c = views.candidate_detail(session, job_id, candidate_id)
    return _render(
        request,
        "candidate.html",
        c=c,
        source_html=highlight_verilog(c["source"]) if c["kind"] != "kernel" else escape(c["source"]),
        diff_parent=diff_html(
            c["parent_source"], c["source"], before_name=f"#{c['parent_id']}", after_name=f"#{c['id']}"
        ),
        diff_original=diff_html(
            c["original_source"], c["source"], before_name="original", after_name=f"#{c['id']}"
        ),
        timing=next((s for s in c["stages"] if s["name"] == "timing"), None),
        synthesis=next((s for s in c["stages"] if s["name"] == "synthesis"), None),
    )


@router.get("/kb", response_class=HTMLResponse)
def kb_page(request: Request) -> HTMLResponse:
    from evoforge.kb import KnowledgeBase, learned_path

    kb = KnowledgeBase.load(learned=learned_path(request.app.state.settings.data_dir))
    return _render(
        request,
        "kb.html",
        builtin=[e.to_json() for e in kb.filter(include_learned=False)],
        learned=[e.to_json() for e in kb.filter(include_builtin=False)],
    )
