"""A local stand-in for OpenAI's files and fine-tuning endpoints, as documented.

It speaks the real wire protocol (multipart upload, JSON job objects, newest-first event
lists paged with ``limit`` and the ``after`` cursor, bearer auth) so the official ``openai``
client runs against it unchanged. It checks uploads the way the service does (purpose,
.jsonl, chat format, tool-call arguments as JSON strings, at least 10 examples) and moves a
job through validating_files -> running (with ``estimated_finish``) -> succeeded | failed
as it is polled.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API_KEY = "sk-test-ftops"
MIN_EXAMPLES = 10
ESTIMATED_RUNTIME_S = 600


@dataclass
class FakeOpenAI:
    scenario: str = "succeed"  # succeed | fail
    burst: bool = False  # all three metrics events (and a message) appear between two polls
    max_page: int = 100  # the server's own page cap (it may return fewer than ``limit``)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    contents: dict[str, bytes] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    polls: dict[str, int] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    event_queries: list[dict[str, list[str]]] = field(default_factory=list)
    url: str = ""

    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake.handle(self, "GET")

            def do_POST(self) -> None:
                fake.handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------ protocol
    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        path = h.path.split("?")[0]
        self.requests.append((method, path))
        if h.headers.get("Authorization") != f"Bearer {API_KEY}":
            return self.send(h, 401, error("Incorrect API key provided.", "invalid_api_key"))
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        parts = path.strip("/").split("/")  # v1, fine_tuning, jobs, <id>, events
        if method == "POST" and parts == ["v1", "files"]:
            return self.upload(h, body)
        if method == "POST" and parts == ["v1", "fine_tuning", "jobs"]:
            return self.create_job(h, json.loads(body or b"{}"))
        if parts[:3] == ["v1", "fine_tuning", "jobs"] and len(parts) >= 4:
            job = self.jobs.get(parts[3])
            if job is None:
                return self.send(h, 404, error(f"No such fine-tuning job: {parts[3]}", "not_found"))
            if method == "GET" and len(parts) == 4:
                return self.send(h, 200, self.advance(job))
            if method == "GET" and parts[4:] == ["events"]:
                return self.send(h, 200, self.list_events(job["id"], parse_qs(urlsplit(h.path).query)))
            if method == "POST" and parts[4:] == ["cancel"]:
                job["status"] = "cancelled"
                return self.send(h, 200, job)
        return self.send(h, 404, error(f"Unknown route {method} {path}", "not_found"))

    def list_events(self, job_id: str, query: dict[str, list[str]]) -> dict[str, Any]:
        """Newest first; ``after`` is the id of the previous page's last (oldest) event."""
        self.event_queries.append(query)
        newest_first = self.events[job_id][::-1]
        after = (query.get("after") or [""])[0]
        if after:
            ids = [e["id"] for e in newest_first]
            newest_first = newest_first[ids.index(after) + 1:] if after in ids else []
        limit = min(int((query.get("limit") or ["20"])[0]), self.max_page)
        return {"object": "list", "data": newest_first[:limit], "has_more": len(newest_first) > limit}

    def send(self, h: BaseHTTPRequestHandler, status: int, payload: dict[str, Any]) -> None:
        raw = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(raw)))
        h.end_headers()
        h.wfile.write(raw)

    def upload(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + h.headers["Content-Type"].encode() + b"\r\n\r\n" + body)
        fields: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[name] = (part.get_filename(), part.get_payload(decode=True))
        purpose = (fields.get("purpose") or (None, b""))[1].decode()
        if purpose != "fine-tune":
            return self.send(h, 400, error(f"Invalid purpose {purpose!r}", "invalid_value", param="purpose"))
        filename, content = fields.get("file") or (None, b"")
        if not filename or not filename.endswith(".jsonl"):
            return self.send(h, 400, error("Fine-tuning files must be .jsonl", "invalid_file_format", param="file"))
        problem = check_chat_jsonl(content)
        if problem:
            return self.send(h, 400, error(f"Invalid file format for Fine-Tuning API. {problem}",
                                           "invalid_file_format", param="file"))
        file_id = f"file-{len(self.files) + 1:04d}"
        obj = {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
               "filename": filename, "purpose": "fine-tune", "status": "processed"}
        self.files[file_id] = obj
        self.contents[file_id] = content
        self.send(h, 200, obj)

    def create_job(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        for key in ("training_file", "validation_file"):
            if body.get(key) and body[key] not in self.files:
                return self.send(h, 400, error(f"File {body[key]} not found", "invalid_value", param=key))
        if not body.get("model") or not body.get("training_file"):
            return self.send(h, 400, error("model and training_file are required", "missing_required_parameter"))
        job_id = f"ftjob-{len(self.jobs) + 1:04d}"
        hyper = (((body.get("method") or {}).get("supervised") or {}).get("hyperparameters")
                 or body.get("hyperparameters") or {})
        job = {"id": job_id, "object": "fine_tuning.job", "created_at": int(time.time()), "error": None,
               "fine_tuned_model": None, "finished_at": None, "hyperparameters": hyper, "model": body["model"],
               "organization_id": "org-test", "result_files": [], "seed": body.get("seed") or 42,
               "status": "validating_files", "trained_tokens": None, "training_file": body["training_file"],
               "estimated_finish": None,
               "validation_file": body.get("validation_file"), "suffix": body.get("suffix"),
               "method": body.get("method"), "metadata": body.get("metadata")}
        self.jobs[job_id] = job
        self.events[job_id] = [event(job_id, 0, "info", "Validating training file: " + body["training_file"])]
        self.polls[job_id] = 0
        self.send(h, 200, job)

    def advance(self, job: dict[str, Any]) -> dict[str, Any]:
        """Each retrieval moves the job on: validate, three metric steps, then finish."""
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        n = self.polls[job["id"]] = self.polls[job["id"]] + 1
        events = self.events[job["id"]]
        if n == 1:
            job["status"] = "running"
            job["estimated_finish"] = job["created_at"] + ESTIMATED_RUNTIME_S
            events.append(event(job["id"], n, "info", "Fine-tuning job started"))
        elif n == 2 and self.burst:
            for step in (1, 2, 3):
                events.append(event(job["id"], n, "info", f"Step {step}/3: training loss={2.0 / step:.2f}",
                                    "metrics", {"step": step, "total_steps": 3, "train_loss": 2.0 / step,
                                                "valid_loss": 2.5 / step}, seq=step))
            events.append(event(job["id"], n, "info", "Checkpoint saved at step 3", seq=4))
            self.polls[job["id"]] = 4
        elif 2 <= n <= 4:
            step = n - 1
            events.append(event(job["id"], n, "info", f"Step {step}/3: training loss={2.0 / step:.2f}", "metrics",
                                {"step": step, "total_steps": 3, "train_loss": 2.0 / step,
                                 "valid_loss": 2.5 / step}))
        elif self.scenario == "fail":
            job["status"] = "failed"
            job["estimated_finish"] = None
            job["error"] = {"code": "invalid_training_file", "param": "training_file",
                            "message": "The job failed due to an invalid training file: too many tokens per example."}
            events.append(event(job["id"], n, "error", "Fine-tuning job failed"))
        else:
            job["status"] = "succeeded"
            job["estimated_finish"] = None
            job["fine_tuned_model"] = f"ft:{job['model']}:ftops:{job['suffix']}:abc123"
            job["trained_tokens"] = 12345
            job["finished_at"] = int(time.time())
            job["result_files"] = ["file-result"]
            events.append(event(job["id"], n, "info", "The job has successfully completed"))
        return job


def error(message: str, code: str, *, param: str | None = None, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def event(job_id: str, n: int, level: str, message: str, kind: str = "message",
          data: dict[str, Any] | None = None, *, seq: int = 0) -> dict[str, Any]:
    """Events of one poll share ``created_at`` (whole seconds), as bursts of real ones do."""
    return {"id": f"ftevent-{job_id}-{n}-{seq}-{kind}", "object": "fine_tuning.job.event",
            "created_at": 1_700_000_000 + n, "level": level, "message": message, "type": kind, "data": data}


def check_chat_jsonl(content: bytes) -> str:
    """The first problem of a chat fine-tuning file, or ''."""
    lines = [line for line in content.decode("utf-8").splitlines() if line.strip()]
    if len(lines) < MIN_EXAMPLES:
        return f"Training file has {len(lines)} example(s), but must have at least {MIN_EXAMPLES} examples"
    for i, line in enumerate(lines, 1):
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            return f"Line {i} is not valid JSON"
        messages = item.get("messages")
        if not isinstance(messages, list) or not messages:
            return f"Line {i} has no messages"
        if not any(m.get("role") == "assistant" for m in messages):
            return f"Line {i} has no assistant message"
        for m in messages:
            if m.get("role") not in ("system", "user", "assistant", "tool"):
                return f"Line {i} has an invalid role {m.get('role')!r}"
            for call in m.get("tool_calls") or []:
                if not isinstance(call.get("function", {}).get("arguments"), str):
                    return f"Line {i}: tool call arguments must be a JSON string"
        if "tools" in item and not isinstance(item["tools"], list):
            return f"Line {i}: tools must be a list"
    return ""
