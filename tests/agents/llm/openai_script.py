"""A scripted OpenAI-compatible server on loopback (real HTTP) for the LLM agent tests.

``POST /v1/chat/completions`` answers from a script: each ``Step`` is used by the next request of its
role ("planner" or "coder"; a repair is a coder request) — or of any role when ``role`` is None.
A step can reply with text, an HTTP error status, a raw (non-JSON) body, or sleep first (to outlast
the client's timeout). When the script has no step left for a role, the ``cycle`` steps of that role
are replayed in a loop; without those, planners get ``plan`` and coders get ``fallback`` (no code by
default). ``GET /v1/models`` lists one model. Every request is logged.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "scripted-model"


@dataclass
class Step:
    content: str | None = None  # the assistant message
    status: int = 200
    raw: str | None = None  # a body that is not a chat completion
    delay_s: float = 0.0
    role: str | None = None  # "planner" | "coder" | None (any)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Logged:
    role: str
    model: str
    messages: list[dict[str, str]]
    step: Step | None


def fenced(code: str, language: str = "verilog", before: str = "Here is the rewrite.") -> str:
    return f"{before}\n\n```{language}\n{code.rstrip()}\n```\n"


class ScriptedServer:
    def __init__(
        self,
        script: list[Step] | None = None,
        *,
        plan: str = "1. Share one adder between the mutually exclusive branches.",
        fallback: str = "I have no further changes to suggest.",
        models: tuple[str, ...] = (MODEL,),
        cycle: list[Step] | None = None,
    ) -> None:
        self.script = list(script or [])
        self.cycle = list(cycle or [])  # replayed in a loop (per role) once the script has nothing left
        self._cycled: dict[str, int] = {}
        self.plan = plan
        self.fallback = fallback
        self.models = models
        self.log: list[Logged] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    data = [
                        {"id": m, "object": "model", "created": 0, "owned_by": "test"} for m in server.models
                    ]
                    self._send(200, json.dumps({"object": "list", "data": data}))
                else:
                    self._send(404, json.dumps({"error": {"message": "not found"}}))

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, json.dumps({"error": {"message": "not found"}}))
                    return
                messages = body.get("messages", [])
                system = next((m["content"] for m in messages if m["role"] == "system"), "")
                role = "planner" if system.startswith("You are the planner") else "coder"
                step = server._next(role)
                server.log.append(Logged(role, body.get("model", ""), messages, step))
                if step is None:
                    step = Step(server.plan if role == "planner" else server.fallback)
                if step.delay_s:
                    time.sleep(step.delay_s)
                if step.raw is not None:
                    self._send(step.status, step.raw, "text/html", step.headers)
                elif step.status != 200:
                    error = {"error": {"message": f"scripted {step.status}", "type": "server_error"}}
                    self._send(step.status, json.dumps(error), headers=step.headers)
                else:
                    self._send(
                        200, json.dumps(completion(body.get("model", MODEL), messages, step.content or ""))
                    )

            def _send(
                self,
                status: int,
                text: str,
                ctype: str = "application/json",
                headers: dict[str, str] | None = None,
            ) -> None:
                payload = text.encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", ctype)
                    self.send_header("content-length", str(len(payload)))
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _next(self, role: str) -> Step | None:
        with self._lock:
            for i, step in enumerate(self.script):
                if step.role is None or step.role == role:
                    return self.script.pop(i)
            steps = [s for s in self.cycle if s.role is None or s.role == role]
            if steps:
                n = self._cycled.get(role, 0)
                self._cycled[role] = n + 1
                return steps[n % len(steps)]
        return None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def count(self, role: str | None = None) -> int:
        return sum(1 for entry in self.log if role is None or entry.role == role)


def completion(model: str, messages: list[dict[str, str]], content: str) -> dict[str, Any]:
    prompt_tokens = sum(len(m.get("content", "").split()) for m in messages)
    completion_tokens = len(content.split())
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
