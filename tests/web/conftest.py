"""Fixtures for the web tests: a real uvicorn server (embedded worker optional) on a free loopback port."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from web_helpers import FAST_RTL, Server, free_port

from evoforge.config import Settings, WebSettings
from evoforge.web import create_app


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[tuple[uvicorn.Server, threading.Thread, httpx.Client]] = []

    def start(
        *, worker: bool = False, token: str | None = None, require_token: bool = False, **web: Any
    ) -> Server:
        settings = Settings(
            data_dir=tmp_path / f"data{len(started)}",
            rtl=FAST_RTL,
            web=WebSettings(**({"heartbeat_s": 0.5} | web)),
            web_token=token,
        )
        app = create_app(settings, embedded_worker=worker, require_token=require_token)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        client = httpx.Client(base_url=url, timeout=60)
        started.append((server, thread, client))
        return Server(url, settings, client)

    yield start
    for server, thread, client in started:
        client.close()
        server.should_exit = True
        thread.join(timeout=10)
