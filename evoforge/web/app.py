"""The FastAPI application: ``create_app(settings)`` wires the store, the routes, safety and the worker.

Safety lives here, at the boundary: writes (POST/PUT/PATCH/DELETE) need ``Authorization: Bearer
TOKEN`` (or a ``token`` form field) when the server is not bound to loopback; request bodies larger
than the upload limit are refused before they are read; every error leaves as a short message (JSON
under ``/api``, an HTML page elsewhere), never a traceback. The embedded worker is a thread that
claims queued jobs like ``evoforge worker`` does.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
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

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: multipart framing and the other form fields on top of the design itself
BODY_OVERHEAD_BYTES = 64 * 1024
TOKEN_HINT = "send the header 'Authorization: Bearer TOKEN' (the server's EVOFORGE_WEB_TOKEN)"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def status_of(exc: EvoforgeError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, BadInputError):
        return 422
    return 500


def create_app(settings: Settings, *, embedded_worker: bool = True, require_token: bool = False) -> FastAPI:
    """The application over ``settings.database_url``; ``require_token`` guards writes with the token."""
    store = open_store(settings.database_url)
    if require_token and not settings.web_token:
        raise BadInputError("a write token is required off loopback", hint="set EVOFORGE_WEB_TOKEN")

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

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.method in WRITE_METHODS:
            length = request.headers.get("content-length")
            limit = settings.web.max_upload_bytes + BODY_OVERHEAD_BYTES
            if length is not None and (not length.isdigit() or int(length) > limit):
                return _error(request, 413, f"request body larger than {limit} bytes", None)
            # the pages' forms carry the token as a field; their routes check it (``token_ok``)
            if request.url.path.startswith("/api") and not token_ok(request):
                return _error(request, 401, "this server needs a token for writes", TOKEN_HINT)
        return await call_next(request)

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
        log.exception("%s %s failed", request.method, request.url.path)
        return _error(request, 500, "internal error (see the server log)", None)

    from evoforge.web import api, pages

    app.include_router(api.router)
    app.include_router(pages.router)
    return app


def token_ok(request: Request, form_token: str | None = None) -> bool:
    """The bearer token (header), or for the pages' forms a ``token`` field, matches the server's."""
    if not request.app.state.require_token:
        return True
    token: str = request.app.state.settings.web_token or ""
    header = request.headers.get("authorization", "")
    given = header[7:] if header.lower().startswith("bearer ") else (form_token or "")
    return bool(token) and hmac.compare_digest(given.encode(), token.encode())


def _error(request: Request, status: int, message: str, hint: str | None) -> Response:
    if request.url.path.startswith("/api") or "text/html" not in request.headers.get("accept", ""):
        body: dict[str, Any] = {"error": message, "status": status}
        if hint:
            body["hint"] = hint
        return JSONResponse(body, status_code=status)
    templates: Environment = request.app.state.templates
    page = templates.get_template("error.html")
    return HTMLResponse(page.render(status=status, message=message, hint=hint), status_code=status)
