"""The JSON API over real HTTP (uvicorn on loopback): submit, list, read, candidates, cancel, events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from web_helpers import ADDSEL, Server


def sse_events(server: Server, job_id: int, timeout_s: float = 300) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    kind = ""
    with server.client.stream("GET", f"/api/jobs/{job_id}/events", timeout=timeout_s) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((kind, json.loads(line.split(":", 1)[1])))
    return events


def test_submit_paste_and_upload_list_read_cancel_without_a_worker(
    start_server: Callable[..., Server],
) -> None:
    server = start_server(worker=False)
    c = server.client
    pasted = c.post("/api/jobs", json={"source": ADDSEL, "budget": 4, "objective": "area,delay"})
    assert pasted.status_code == 201, pasted.text
    uploaded = c.post(
        "/api/jobs", json={"budget": 2, "proposer": "offline", "source": ADDSEL, "filename": "addsel.v"}
    )
    assert uploaded.status_code == 201, uploaded.text
    first, second = pasted.json()["job_id"], uploaded.json()["job_id"]

    listed = c.get("/api/jobs").json()["jobs"]
    assert [j["job_id"] for j in listed] == [second, first]
    # not loaded yet (the worker loads it): named by the file, or "design" when pasted
    assert [j["target"] for j in listed] == ["addsel", "design"]
    assert all(j["status"] == "queued" for j in listed)
    assert c.get("/api/jobs", params={"status": "running"}).json()["jobs"] == []

    job = c.get(f"/api/jobs/{first}").json()
    assert job["status"] == "queued" and job["options"]["budget"] == 4
    assert job["progress"]["budget"] == 4 and job["progress"]["done"] is False
    assert job["options"]["objectives"] == ["area_um2", "delay_ns"]
    assert c.get(f"/api/jobs/{second}").json()["options"]["proposer"] == "offline"
    assert c.get(f"/api/jobs/{first}/candidates").json()["candidates"] == []

    cancelled = c.post(f"/api/jobs/{first}/cancel", json={}).json()
    assert cancelled == {"job_id": first, "status": "cancelled", "cancel_requested": True}
    events = sse_events(server, first, timeout_s=10)  # a finished job: one progress event, then the end
    assert [k for k, _ in events] == ["progress", "end"] and events[-1][1]["status"] == "cancelled"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"source": ""}, "no design given"),
        ({"source": ADDSEL, "budget": 0}, "budget"),
        ({"source": ADDSEL, "objective": "speed"}, "unknown objective"),
        ({"source": ADDSEL, "proposer": "magic"}, "unknown proposer"),
        ({"source": ADDSEL, "liberty": "/etc/passwd"}, "unknown liberty"),
        ({"source": ADDSEL, "top": "a/../b"}, "not a plain Verilog identifier"),
        ({"source": ADDSEL, "proposer": "llm"}, "needs an OpenAI-compatible model endpoint"),
        ({"source": ADDSEL, "unknown": 1}, "Extra inputs"),
    ],
)
def test_bad_submissions_are_refused_with_a_message_and_nothing_is_stored(
    start_server: Callable[..., Server], data: dict[str, Any], message: str
) -> None:
    server = start_server()
    response = server.client.post("/api/jobs", json=data)
    assert response.status_code in (400, 422), response.text
    body = response.json()
    assert message in body["error"], body
    assert "Traceback" not in response.text
    assert server.client.get("/api/jobs").json()["jobs"] == []


def test_upload_limit_missing_ids_and_openapi(start_server: Callable[..., Server]) -> None:
    server = start_server(max_upload_bytes=2048)
    c = server.client
    big = ADDSEL + "// padding\n" * 400
    too_big = c.post("/api/jobs", json={"source": big, "filename": "big.v"})
    assert too_big.status_code == 422 and "larger than 2048 bytes" in too_big.json()["error"]
    huge = c.post("/api/jobs", json={"source": "x" * 200_000})
    assert huge.status_code == 413
    assert c.get("/api/jobs").json()["jobs"] == []
    missing = c.get("/api/jobs/9999")
    assert missing.status_code == 404 and missing.json()["error"] == "no job with id 9999"
    assert c.get("/api/jobs/9999/events").status_code == 404
    assert c.get("/api/jobs/9999/candidates/1").status_code == 404
    assert c.get("/api/jobs/abc").status_code == 422
    page = c.get("/jobs/9999", headers={"accept": "text/html"})
    assert page.status_code == 404 and "no job with id 9999" in page.text and "Traceback" not in page.text
    assert c.get("/jobs/1/candidates/1", headers={"accept": "text/html"}).status_code == 404
    schema = c.get("/openapi.json").json()
    paths = set(schema["paths"])
    assert {
        "/api/jobs",
        "/api/jobs/{job_id}",
        "/api/jobs/{job_id}/candidates",
        "/api/jobs/{job_id}/candidates/{candidate_id}",
        "/api/jobs/{job_id}/cancel",
        "/api/jobs/{job_id}/events",
        "/api/kb",
    } <= paths
    assert "/jobs/{job_id}" not in paths  # pages are not part of the API schema
    kb = c.get("/api/kb").json()
    assert kb["builtin"] and isinstance(kb["learned"], list)


def test_writes_need_the_token_off_loopback(start_server: Callable[..., Server]) -> None:
    server = start_server(token="s3cret", require_token=True)
    c = server.client
    assert c.post("/api/jobs", json={"source": ADDSEL}).status_code == 401
    wrong = c.post("/api/jobs", json={"source": ADDSEL}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "token" in wrong.json()["error"]
    assert c.get("/api/jobs").status_code == 200  # reads stay open
    ok = c.post("/api/jobs", json={"source": ADDSEL}, headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 201
    job_id = ok.json()["job_id"]
    assert c.post(f"/api/jobs/{job_id}/cancel", json={}).status_code == 401
    page = c.post("/jobs", data={"source": ADDSEL, "token": "nope"}, headers={"accept": "text/html"})
    assert page.status_code == 401 and "needs a token" in page.text
    assert len(c.get("/api/jobs").json()["jobs"]) == 1


def test_a_job_runs_streams_progress_and_its_candidates_can_be_browsed(
    start_server: Callable[..., Server],
) -> None:
    server = start_server(worker=True)
    c = server.client
    form = {"source": ADDSEL, "budget": 3, "proposer": "offline"}
    job_id = c.post("/api/jobs", json=form).json()["job_id"]
    events = sse_events(server, job_id)
    kinds = [k for k, _ in events]
    assert kinds[-1] == "end" and events[-1][1]["status"] == "succeeded"
    progress = [e for k, e in events if k == "progress"]
    assert progress[-1]["done"] and progress[-1]["percent"] == 100
    finished = [p["finished"] for p in progress]
    assert finished == sorted(finished)

    job = c.get(f"/api/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and job["best"] is not None
    assert job["best"]["improvement"]["area_um2"] > 1.0
    assert job["best_so_far"] and job["pareto_front"]
    everything = c.get(f"/api/jobs/{job_id}/candidates").json()["candidates"]
    assert len(everything) >= 1
    accepted = c.get(f"/api/jobs/{job_id}/candidates", params={"status": "accepted"}).json()["candidates"]
    assert accepted and all(x["status"] == "accepted" for x in accepted)
    by_area = c.get(
        f"/api/jobs/{job_id}/candidates", params={"order_by": "area_um2", "status": "accepted"}
    ).json()["candidates"]
    areas = [x["metrics"]["area_um2"] for x in by_area]
    assert areas == sorted(areas)
    bad_sort = c.get(f"/api/jobs/{job_id}/candidates", params={"order_by": "nope"})
    assert bad_sort.status_code == 422 and "cannot order candidates" in bad_sort.json()["error"]
    assert c.get(f"/api/jobs/{job_id}/candidates", params={"status": "nope"}).status_code == 422

    best = c.get(f"/api/jobs/{job_id}/candidates/{job['best']['candidate_id']}").json()
    assert [s["name"] for s in best["stages"]][:2] == ["parse", "lint"]
    assert all(s["ok"] for s in best["stages"]) and best["assurance"]
    assert best["original_source"] == ADDSEL and best["source"] != ADDSEL
    assert best["llm_calls"] == []
    other_job = c.post("/api/jobs", json={"source": ADDSEL, "budget": 1}).json()["job_id"]
    assert c.get(f"/api/jobs/{other_job}/candidates/{best['id']}").status_code == 404


def test_a_running_job_can_be_cancelled(start_server: Callable[..., Server]) -> None:
    """Deterministic: the test holds the job's lease itself (a worker that has claimed it), so the
    job is running — and cannot finish — when the cancel arrives; then that worker runs it."""
    from evoforge.search import jobs
    from evoforge.store import repository
    from evoforge.store.engine import open_store

    server = start_server(worker=False)
    c = server.client
    job_id = c.post("/api/jobs", json={"source": ADDSEL, "budget": 40}).json()["job_id"]
    store = open_store(server.settings.database_url)
    with store.transaction() as session:
        claimed = repository.claim_next_job(session, "test-worker")
        assert claimed is not None and claimed.id == job_id and claimed.lease_token
        token = claimed.lease_token
    answer = c.post(f"/api/jobs/{job_id}/cancel", json={}).json()
    assert answer["status"] == "running" and answer["cancel_requested"] is True
    jobs.run_job(store, job_id, server.settings, worker="test-worker", lease=token)
    job = c.get(f"/api/jobs/{job_id}").json()
    assert job["status"] == "cancelled" and job["error"] == "cancelled on request"
    assert job["progress"]["proposed"] < 40


def test_serve_off_loopback_refuses_to_start_without_a_token() -> None:
    env = {k: v for k, v in os.environ.items() if k != "EVOFORGE_WEB_TOKEN"}
    done = subprocess.run(
        [sys.executable, "-m", "evoforge.cli", "serve", "--host", "0.0.0.0", "--port", "9"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "writes need a token" in done.stderr and "EVOFORGE_WEB_TOKEN" in done.stderr
