"""A local OpenAI-compatible upstream for the gateway tests (http.server in a thread).

What it does is chosen by the ``model`` the gateway sends it:
  fake-text   a plain answer                    fake-tools  two parallel tool calls
  fake-bad    a call that breaks the schema     fake-500    HTTP 500
  fake-400    an OpenAI 400 error               fake-slow   answers after 3 s
  fake-nulls  a call with null optionals, as strict mode gives them
Streaming (``"stream": true``) sends the same answer as SSE chunks, with a usage chunk when
``stream_options.include_usage`` is set. Every request body it received is kept in ``seen``.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOOL_CALLS = [
    {"id": "call_1", "type": "function",
     "function": {"name": "create_payment", "arguments": json.dumps({"amount_cents": 500, "currency": "USD"})}},
    {"id": "call_2", "type": "function",
     "function": {"name": "create_payment", "arguments": json.dumps({"amount_cents": 700, "currency": "EUR"})}},
]
BAD_CALL = [{"id": "call_x", "type": "function",
             "function": {"name": "create_payment", "arguments": json.dumps({"amount_cents": "lots"})}}]
NULLS_CALL = [{"id": "call_n", "type": "function",
               "function": {"name": "create_payment", "arguments": json.dumps(
                   {"amount_cents": 500, "currency": "USD", "customer_id": None, "customer_email": None})}}]
USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}


def _message(model: str) -> dict[str, Any]:
    if model == "fake-tools":
        return {"role": "assistant", "content": None, "tool_calls": TOOL_CALLS}
    if model == "fake-bad":
        return {"role": "assistant", "content": None, "tool_calls": BAD_CALL}
    if model == "fake-nulls":
        return {"role": "assistant", "content": None, "tool_calls": NULLS_CALL}
    return {"role": "assistant", "content": "Hello from the upstream."}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeUpstreamServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))) or b"{}")
        self.server.seen.append({"body": body, "authorization": self.headers.get("authorization", "")})
        model = body.get("model", "")
        if model == "fake-500":
            self._json(500, {"error": {"message": "upstream exploded", "type": "server_error"}})
            return
        if model == "fake-400":
            self._json(400, {"error": {"message": "max_tokens is too large", "type": "invalid_request_error",
                                       "param": "max_tokens", "code": None}})
            return
        if model == "fake-slow":
            time.sleep(3)
        message = _message(model)
        if body.get("stream"):
            self._stream(model, message, bool((body.get("stream_options") or {}).get("include_usage")))
            return
        self._json(200, {"id": "up-1", "object": "chat.completion", "created": int(time.time()), "model": model,
                         "choices": [{"index": 0, "message": message,
                                      "finish_reason": "tool_calls" if message.get("tool_calls") else "stop"}],
                         "usage": USAGE})

    def _stream(self, model: str, message: dict[str, Any], usage: bool) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()
        base = {"id": "up-1", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}

        def emit(choices: list[Any], **extra: Any) -> None:
            self.wfile.write(b"data: " + json.dumps({**base, "choices": choices, **extra}).encode() + b"\n\n")
            self.wfile.flush()

        emit([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        if message.get("tool_calls"):
            for i, call in enumerate(message["tool_calls"]):
                emit([{"index": 0, "delta": {"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                                             "function": {"name": call["function"]["name"],
                                                                          "arguments": ""}}]},
                       "finish_reason": None}])
                args = call["function"]["arguments"]
                for part in (args[: len(args) // 2], args[len(args) // 2:]):
                    emit([{"index": 0, "delta": {"tool_calls": [{"index": i, "function": {"arguments": part}}]},
                           "finish_reason": None}])
            emit([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}])
        else:
            for word in ("Hello ", "from ", "the ", "upstream."):
                emit([{"index": 0, "delta": {"content": word}, "finish_reason": None}])
            emit([{"index": 0, "delta": {}, "finish_reason": "stop"}])
        if usage:
            emit([], usage=USAGE)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


class FakeUpstreamServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def start(self) -> FakeUpstreamServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
