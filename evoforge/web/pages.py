"""Server-rendered pages: the jobs list with the submit form, a job, a candidate, the knowledge base.

Jinja2 with autoescape; charts are inline SVG and source is highlighted on the server
(``charts.py``, ``highlight.py``), so the pages need only the small vendored CSS and JS.

The forms post to the same origin with a CSRF token (a hidden field matching a ``SameSite=Strict``
cookie, ``guard.py``); a submitted form is parsed with caps on its parts. Off loopback the browser
signs in once at ``/login`` with the server's token (a session cookie); the token is never a form
field of the other forms, so that it is checked before any body is read.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment
from markupsafe import escape
from starlette.datastructures import FormData, UploadFile

from evoforge.domain import Metrics
from evoforge.errors import BadInputError
from evoforge.store import repository
from evoforge.store.engine import Store
from evoforge.web import charts, views
from evoforge.web.guard import (
    SESSION_COOKIE,
    csrf_ok,
    csrf_token,
    session_value,
    set_csrf_cookie,
    token_ok,
)
from evoforge.web.highlight import diff_html, highlight_verilog
from evoforge.web.submit import KINDS, PROPOSERS, Submission, liberty_choices, submit

CSRF_MESSAGE = "the form has expired or came from another site"
CSRF_HINT = "reload the page and submit again"

router = APIRouter(include_in_schema=False)


def _render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    templates: Environment = request.app.state.templates
    state = request.app.state
    csrf = csrf_token(request)
    context |= {
        "request": request,
        "require_token": state.require_token,
        "signed_in": token_ok(request, state.settings.web_token, state.require_token),
        "csrf": csrf,
    }
    response = HTMLResponse(templates.get_template(name).render(**context), status_code=status_code)
    if request.cookies.get("evoforge_csrf") != csrf:
        set_csrf_cookie(response, csrf)
    return response


async def _form(request: Request) -> FormData:
    """The posted form, parsed with caps on the number of parts and on each field's size."""
    web = request.app.state.settings.web
    return await request.form(
        max_files=1, max_fields=web.max_form_parts, max_part_size=web.max_upload_bytes + 1024
    )


def _field(form: FormData, name: str, default: str = "") -> str:
    value = form.get(name, default)
    return value if isinstance(value, str) else default


async def read_upload(request: Request, upload: Any) -> tuple[str, str] | None:
    """(file name, text) of an uploaded design, refused when larger than the limit or not text."""
    if not isinstance(upload, UploadFile) or not upload.filename:
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


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _jobs_page(
    request: Request, *, form: Submission | None = None, error: str | None = None, status_code: int = 422
) -> HTMLResponse:
    settings = request.app.state.settings
    with _store(request).transaction() as session:
        jobs = [views.job_summary(j) for j in repository.list_jobs(session, limit=100)]
    return _render(
        request,
        "jobs.html",
        status_code=status_code if error else 200,
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
async def submit_form(request: Request) -> Response:
    form_data = await _form(request)
    try:
        budget = int(_field(form_data, "budget", "20") or "20")
    except ValueError:
        budget = 0  # refused by ``submit`` with its message
    fields = {k: _field(form_data, k) for k in ("kind", "source", "top", "objective", "proposer", "liberty")}
    form = Submission(
        kind=fields["kind"] or "auto",
        source=fields["source"],
        top=fields["top"],
        objective=fields["objective"] or "area,delay",
        budget=budget,
        proposer=fields["proposer"] or "auto",
        liberty=fields["liberty"] or "generic",
    )
    if not csrf_ok(request, _field(form_data, "csrf")):
        return await run_in_threadpool(
            lambda: _jobs_page(request, form=form, error=f"{CSRF_MESSAGE} — {CSRF_HINT}", status_code=403)
        )
    try:
        uploaded = await read_upload(request, form_data.get("file"))
        if uploaded is not None:
            form = Submission(**{**form.__dict__, "filename": uploaded[0], "source": uploaded[1]})
        job_id = await run_in_threadpool(submit, _store(request), request.app.state.settings, form)
    except BadInputError as exc:
        message = exc.message + (f" — {exc.hint}" if exc.hint else "")
        return await run_in_threadpool(lambda: _jobs_page(request, form=form, error=message))
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> HTMLResponse:
    return _render(request, "login.html", error=None)


@router.post("/login", response_model=None)
async def login(request: Request) -> Response:
    """Off loopback: the server's token, once, for a session cookie that the forms' posts carry."""
    form = await _form(request)
    settings = request.app.state.settings
    given = _field(form, "token").strip()
    expected = settings.web_token or ""
    if not csrf_ok(request, _field(form, "csrf")):
        return _render(request, "login.html", status_code=403, error=f"{CSRF_MESSAGE} — {CSRF_HINT}")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        return _render(request, "login.html", status_code=401, error="that is not this server's token")
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(SESSION_COOKIE, session_value(expected), httponly=True, samesite="strict", path="/")
    return response


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
async def cancel_form(request: Request, job_id: int) -> Response:
    form = await _form(request)
    if not csrf_ok(request, _field(form, "csrf")):
        raise BadInputError(CSRF_MESSAGE, hint=CSRF_HINT)

    def cancel() -> None:
        with _store(request).transaction() as session:
            repository.request_cancel(session, job_id)

    await run_in_threadpool(cancel)
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
    from evoforge.search.learned_store import open_knowledge

    kb = open_knowledge(_store(request), request.app.state.settings.data_dir)
    return _render(
        request,
        "kb.html",
        builtin=[e.to_json() for e in kb.filter(include_learned=False)],
        learned=[e.to_json() for e in kb.filter(include_builtin=False)],
    )
