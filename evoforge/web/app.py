"""The FastAPI application: ``create_app(settings)`` wires the store, the routes, safety and the worker.

Safety lives at the boundary: ``guard.Guard`` checks the Host, refuses cross-origin writes, checks
the write token off loopback (``Authorization: Bearer TOKEN`` or the ``/login`` session cookie)
and JSON-only API writes — all before a body is read — and counts body bytes as they arrive. Every
error leaves as a short message (JSON under ``/api``, an HTML page elsewhere), never a traceback. The
embedded worker is a thread that claims queued jobs like ``evoforge worker`` does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader
from starlette.exceptions import HTTPException as StarletteHTTPException

from evoforge import __version__
from evoforge.config import Settings
from evoforge.errors import BadInputError, EvoforgeError, NotFoundError
from evoforge.search.jobs import Worker
from evoforge.store.engine import open_store
from evoforge.web.guard import TOKEN_HINT, BodyTooLarge, Guard, allowed_hosts_for, is_loopback

__all__ = ["TOKEN_HINT", "create_app", "is_loopback"]

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
#: multipart framing, JSON escaping and the other form fields on top of the design itself
BODY_OVERHEAD_BYTES = 64 * 1024


def status_of(exc: EvoforgeError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, BadInputError):
        return 422
    return 500


def create_app(
    settings: Settings,
    *,
    embedded_worker: bool = True,
    require_token: bool = False,
    host: str = "127.0.0.1",
) -> FastAPI:
    """The application over ``settings.database_url``, served on ``host`` (the bound address: the
    Host header must name it); ``require_token`` guards writes with the token."""
    if require_token and not settings.web_token:
        raise BadInputError("a write token is required off loopback", hint="set EVOFORGE_WEB_TOKEN")
    store = open_store(settings.database_url, create_dir=settings.db is None)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker = Worker(store, settings) if embedded_worker else None
        if worker is not None:
            threading.Thread(target=worker.run_forever, name="embedded-worker", daemon=True).start()
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()  # a job still running is resumed by the next worker (stale heartbeat)

    app = FastAPI(
        title="evoforge",
        version=__version__,
        description="Submit RTL designs to optimise, watch the search, browse verified candidates.",
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.settings = settings
    app.state.require_token = require_token
    app.state.templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.add_middleware(
        Guard,
        allowed_hosts=allowed_hosts_for(host, settings.web.allowed_hosts),
        token=settings.web_token,
        require_token=require_token,
        body_limit=settings.web.max_upload_bytes + BODY_OVERHEAD_BYTES,
        error=_error,
    )

    @app.exception_handler(EvoforgeError)
    async def evoforge_error(request: Request, exc: EvoforgeError) -> Response:
        return _error(request, status_of(exc), exc.message, exc.hint)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        where = [".".join(str(p) for p in e.get("loc", ()) if p != "body") for e in exc.errors()]
        problems = "; ".join(f"{w}: {e.get('msg')}" for w, e in zip(where, exc.errors(), strict=True))
        return _error(request, 422, f"invalid request: {problems}", None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(request, exc.status_code, str(exc.detail), None)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, BodyTooLarge):  # the guard answers that one (413)
            log.exception("%s %s failed", request.method, request.url.path)
        return _error(request, 500, "internal error (see the server log)", None)

    from evoforge.web import api, pages

    app.include_router(api.router)
    app.include_router(pages.router)
    return app


def _error(request: Request, status: int, message: str, hint: str | None) -> Response:
    if request.url.path.startswith("/api") or "text/html" not in request.headers.get("accept", ""):
        body: dict[str, Any] = {"error": message, "status": status}
        if hint:
            body["hint"] = hint
        return JSONResponse(body, status_code=status)
    templates: Environment = request.app.state.templates
    page = templates.get_template("error.html")
    return HTMLResponse(page.render(status=status, message=message, hint=hint), status_code=status)
