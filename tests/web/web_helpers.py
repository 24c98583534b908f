"""Helpers of the web tests: the tiny ADDSEL design, a free loopback port, a running server's handle."""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from evoforge.config import RtlSettings, Settings

#: four mutually exclusive adders; the resource-sharing rule makes one (as in tests/test_cli_run.py)
ADDSEL = (Path(__file__).resolve().parents[1] / "fixtures" / "rtl_small" / "addsel.v").read_text()

FAST_RTL = RtlSettings(sim_cycles=1000, sim_seeds=1, probe_cycles=300, equivalence_timeout_s=30)


def csrf_of(client: httpx.Client, page: str = "/") -> str:
    """The CSRF token a page hands the browser (the client keeps the matching cookie)."""
    html = client.get(page, headers={"accept": "text/html"}).text
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def post_form(client: httpx.Client, path: str, data: dict[str, str], **kwargs: Any) -> httpx.Response:
    """Post a page's form as a browser would: with the CSRF token of the page it came from."""
    return client.post(path, data={**data, "csrf": csrf_of(client)}, **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    settings: Settings
    client: httpx.Client

    def wait_for(self, job_id: int, statuses: set[str], timeout_s: float = 240) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job = self.client.get(f"/api/jobs/{job_id}").json()
            if job["status"] in statuses:
                return dict(job)
            time.sleep(0.3)
        raise AssertionError(f"job {job_id} did not reach {statuses} in {timeout_s} s")
