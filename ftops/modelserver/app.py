"""ftops' model server: OpenAI's chat completions protocol over a local base model and its LoRA adapters.

Endpoints (all behind ``Authorization: Bearer <FTOPS_MODEL_SERVER_API_KEY>``):

- ``GET /v1/models``: the base model and every loaded adapter (vLLM's shape: ``root``, ``parent``);
- ``POST /v1/chat/completions``: ``model`` is the base model's name or an adapter's; tools are
  rendered into the prompt and calls parsed out of the text into OpenAI ``tool_calls``;
  non-streamed or streamed (server-sent events, ``stream_options.include_usage`` honoured);
- ``POST /v1/load_lora_adapter`` ``{"lora_name", "lora_path"}`` and ``POST /v1/unload_lora_adapter``
  ``{"lora_name"}``: vLLM's runtime adapter endpoints with vLLM's shapes and answers, so the code
  that drives this server drives vLLM (``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``) unchanged;
  ``lora_path`` must resolve inside the adapters root (ARCHITECTURE rule 15);
- an extension field of the chat completion body, ``"ftops_constrained": true`` (the ``openai``
  client sends it with ``extra_body``; the server's default is ``--constrained`` /
  ``FTOPS_MODEL_SERVER_CONSTRAINED``): tool calls are decoded under the offered tools' JSON
  Schemas (``ftops.core.ml.constrained``), per row, so one batch mixes constrained and free rows;
- ``GET /healthz``: no key needed.

Requests that arrive together are generated together: a batcher collects for a few
milliseconds (or until a batch is full) and hands the batch to the engine, whose rows may use
different adapters. The engine runs on one worker thread; loads and unloads queue on the
same thread, so they never run under a generation.

A streamed answer is generated whole, then sent as chunks: the batch is what keeps a small
server's throughput up, and token-by-token streaming would take a row out of it. Errors are
OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, never a page.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson

from ftops.common.asgi_http import ApiError, Receive, Send, read_body, respond
from ftops.core.parsing import TOOL_CALL_OPEN
from ftops.modelserver.engine import Engine, EngineError, GenRequest, GenResult

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]

MAX_BODY = 8 * 1024 * 1024
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "invalid_request_error", 405: "invalid_request_error", 413: "invalid_request_error"}


def error_body(status: int, message: str, code: str, param: str | None = None) -> bytes:
    kind = ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


async def read_json(receive: Receive) -> dict[str, Any]:
    try:
        body = orjson.loads(await read_body(receive, MAX_BODY))
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object", code="invalid_body")
    return body


@dataclass(frozen=True)
class ServerOptions:
    api_key: str
    batch_wait_ms: float = 5.0  # how long the first request of a batch waits for company
    max_batch: int = 16
    default_max_tokens: int = 256
    constrained: bool = False  # schema-constrained tool calls for requests that do not say (ftops_constrained)


@dataclass
class _Pending:
    request: GenRequest
    future: asyncio.Future[GenResult]


class Batcher:
    """Collects requests for ``wait_s`` (or until ``max_batch``), then generates them in one batch."""

    def __init__(self, server: ModelServer, *, wait_s: float, max_batch: int) -> None:
        self.server = server
        self.wait_s = wait_s
        self.max_batch = max_batch
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.batches = 0
        self.largest = 0

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    async def submit(self, request: GenRequest) -> GenResult:
        self.start()
        future: asyncio.Future[GenResult] = asyncio.get_running_loop().create_future()
        await self.queue.put(_Pending(request, future))
        return await future

    async def _run(self) -> None:
        while True:
            first = await self.queue.get()
            batch = [first]
            deadline = time.monotonic() + self.wait_s
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), remaining))
                except TimeoutError:
                    break
            while len(batch) < self.max_batch and not self.queue.empty():  # whatever else is already here
                batch.append(self.queue.get_nowait())
            live = [p for p in batch if not p.future.done()]
            if not live:
                continue
            self.batches += 1
            self.largest = max(self.largest, len(live))
            try:
                results = await self.server.on_engine(self.server.engine.generate, [p.request for p in live])
            except EngineError as exc:
                # One bad row (an adapter unloaded while it waited) must not fail the others.
                if len(live) == 1:
                    live[0].future.set_exception(exc)
                    continue
                for pending in live:
                    await self._alone(pending)
                continue
            except Exception as exc:
                logger.exception("model server: generation failed")
                for pending in live:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
                continue
            for pending, result in zip(live, results, strict=True):
                if not pending.future.done():
                    pending.future.set_result(result)

    async def _alone(self, pending: _Pending) -> None:
        try:
            result = (await self.server.on_engine(self.server.engine.generate, [pending.request]))[0]
        except Exception as exc:
            if not pending.future.done():
                pending.future.set_exception(exc)
            return
        if not pending.future.done():
            pending.future.set_result(result)


class ModelServer:
    def __init__(self, engine: Engine, options: ServerOptions) -> None:
        if not options.api_key:
            raise ValueError("the model server needs an API key (FTOPS_MODEL_SERVER_API_KEY)")
        self.engine = engine
        self.options = options
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-server-engine")
        self.batcher = Batcher(self, wait_s=options.batch_wait_ms / 1000, max_batch=options.max_batch)
        self.created = int(time.time())

    async def on_engine(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    # --- ASGI -----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        routes: dict[str, tuple[str, Callable[..., Awaitable[None]]]] = {
            "/v1/chat/completions": ("POST", self.chat_completions),
            "/v1/models": ("GET", self.models),
            "/v1/load_lora_adapter": ("POST", self.load_lora_adapter),
            "/v1/unload_lora_adapter": ("POST", self.unload_lora_adapter),
        }
        try:
            if path == "/healthz":
                await respond(send, 200, b'{"status":"ok"}')
                return
            if path not in routes:
                raise ApiError(404, f"no endpoint {method} {path}", code="not_found")
            expected, handler = routes[path]
            if method != expected:
                raise ApiError(405, f"use {expected} for {path}", code="method_not_allowed")
            self.authenticate(scope)
            await handler(scope, receive, send)
        except (ApiError, EngineError) as exc:
            await respond(send, exc.status, error_body(exc.status, exc.message, exc.code, exc.param))
        except ConnectionAbortedError:
            return
        except Exception:
            logger.exception("model server: unexpected error on %s %s", method, path)
            with contextlib.suppress(Exception):
                await respond(send, 500, error_body(500, "the model server failed on this request; it is logged",
                                                    "internal_error"))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.on_engine(self.engine.load)
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": f"the base model did not load: {exc}"})
                    return
                self.batcher.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.batcher.stop()
                self.executor.shutdown(wait=False, cancel_futures=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def authenticate(self, scope: Scope) -> None:
        auth = ""
        for key, value in scope.get("headers", []):
            if key == b"authorization":
                auth = value.decode("latin-1").strip()
        secret = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if not secret or not hmac.compare_digest(secret.encode(), self.options.api_key.encode()):
            raise ApiError(401, "send the model server's key: Authorization: Bearer <FTOPS_MODEL_SERVER_API_KEY>",
                           code="invalid_api_key")

    # --- endpoints ------------------------------------------------------------------------------

    async def models(self, scope: Scope, receive: Receive, send: Send) -> None:
        base = self.engine.base_name
        data = [{"id": base, "object": "model", "created": self.created, "owned_by": "ftops",
                 "root": self.engine.config.base_model, "parent": None}]
        for adapter in list(self.engine.adapters.values()):
            data.append({"id": adapter.name, "object": "model", "created": int(adapter.loaded_at), "owned_by": "ftops",
                         "root": str(adapter.path), "parent": base})
        await respond(send, 200, orjson.dumps({"object": "list", "data": data}))

    async def load_lora_adapter(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_json(receive)
        name, path = body.get("lora_name"), body.get("lora_path")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "lora_name is required", code="invalid_request", param="lora_name")
        _adapter, added = await self.on_engine(self.engine.load_adapter, name, path)
        logger.info("model server: adapter %s %s", name, "loaded" if added else "was already loaded")
        text = f"Success: LoRA adapter '{name}' added successfully." if added else \
            f"Success: LoRA adapter '{name}' was already loaded from this path."
        await respond(send, 200, text.encode(), content_type=b"text/plain; charset=utf-8")

    async def unload_lora_adapter(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_json(receive)
        name = body.get("lora_name")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "lora_name is required", code="invalid_request", param="lora_name")
        await self.on_engine(self.engine.unload_adapter, name)
        await respond(send, 200, f"Success: LoRA adapter '{name}' removed successfully.".encode(),
                      content_type=b"text/plain; charset=utf-8")

    async def chat_completions(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_json(receive)
        request, offer_tools = self._gen_request(body)
        stream = bool(body.get("stream"))
        result = await self.batcher.submit(request)
        model = str(body["model"])
        message, finish = _message(result, parse_calls=offer_tools)
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        usage = {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                 "total_tokens": result.prompt_tokens + result.completion_tokens}
        headers = {"x-batch-size": str(result.batch_size)}
        if not stream:
            answer = {"id": completion_id, "object": "chat.completion", "created": created, "model": model,
                      "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
                      "usage": usage}
            await respond(send, 200, orjson.dumps(answer), headers=headers)
            return
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        raw = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        raw += [(k.encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        for chunk in _chunks(message, finish, usage if include_usage else None):
            event = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                     **chunk}
            await send({"type": "http.response.body", "body": b"data: " + orjson.dumps(event) + b"\n\n",
                        "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})

    def _gen_request(self, body: dict[str, Any]) -> tuple[GenRequest, bool]:
        model = body.get("model")
        if not isinstance(model, str) or not model.strip():
            raise ApiError(400, "'model' is required: the base model's name or a loaded adapter's",
                           code="missing_model", param="model")
        adapter: str | None = None
        if not self.engine.is_base(model):
            if model not in self.engine.adapters:
                raise ApiError(404, f"The model `{model}` does not exist.", code="model_not_found", param="model")
            adapter = model
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or any(
                not isinstance(m, dict) or not isinstance(m.get("role"), str) for m in messages):
            raise ApiError(400, "'messages' must be a non-empty array of {role, content} objects",
                           code="invalid_messages", param="messages")
        tools = body.get("tools") or []
        if not isinstance(tools, list) or any(not isinstance(t, dict) or not isinstance(t.get("function"), dict)
                                              or not isinstance(t["function"].get("name"), str) for t in tools):
            raise ApiError(400, "'tools' must be an array of {type: 'function', function: {name, parameters}}",
                           code="invalid_tools", param="tools")
        offer_tools = bool(tools) and body.get("tool_choice") != "none"
        n = body.get("n", 1)
        if n not in (None, 1):
            raise ApiError(400, "this server generates one choice per request ('n' must be 1)", code="invalid_n",
                           param="n")
        if "stream" in body and not isinstance(body["stream"], bool):
            raise ApiError(400, "'stream' must be true or false", code="invalid_stream", param="stream")
        limit = self.engine.config.max_new_tokens
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if max_tokens is None:
            max_tokens = min(self.options.default_max_tokens, limit)
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= limit:
            raise ApiError(400, f"'max_tokens' must be an integer from 1 to {limit}", code="invalid_max_tokens",
                           param="max_tokens")
        temperature = _number(body, "temperature", 0.0, 2.0, default=0.0)
        top_p = _number(body, "top_p", 0.0, 1.0, default=1.0)
        stop = body.get("stop")
        stops: tuple[str, ...] = ()
        if isinstance(stop, str):
            stops = (stop,)
        elif isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= 4:
            stops = tuple(stop)
        elif stop is not None:
            raise ApiError(400, "'stop' must be a string or up to 4 strings", code="invalid_stop", param="stop")
        constrained = body.get("ftops_constrained")
        if constrained is None:
            constrained = self.options.constrained
        if not isinstance(constrained, bool):
            raise ApiError(400, "'ftops_constrained' must be true or false (tool calls held to the tools' schemas)",
                           code="invalid_ftops_constrained", param="ftops_constrained")
        prompt = self.engine.render(messages, tools if offer_tools else [])
        return GenRequest(prompt=prompt, adapter=adapter, max_tokens=max_tokens, temperature=temperature,
                          top_p=top_p, stop=stops,
                          constrain_tools=list(tools) if constrained and offer_tools else None), offer_tools


def _number(body: dict[str, Any], key: str, low: float, high: float, *, default: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ApiError(400, f"'{key}' must be a number from {low:g} to {high:g}", code=f"invalid_{key}", param=key)
    return float(value)


def _message(result: GenResult, *, parse_calls: bool) -> tuple[dict[str, Any], str]:
    """The assistant message and finish reason: calls found in the text become ``tool_calls``."""
    from ftops.core.adapters import output_from_text

    message: dict[str, Any] = {"role": "assistant", "content": result.text.strip() or None}
    if not parse_calls:
        return message, result.finish_reason
    output = output_from_text(result.text)
    if not output.calls:
        if TOOL_CALL_OPEN in result.text:  # a call the model did not finish: say so rather than pass it as prose
            message["content"] = result.text.strip()
        return message, result.finish_reason
    message["content"] = output.text or None
    message["tool_calls"] = [
        {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
         "function": {"name": str(call.get("name", "")),
                      "arguments": orjson.dumps(call.get("arguments") or {}).decode()}}
        for call in output.calls
    ]
    return message, "tool_calls"


def _chunks(message: dict[str, Any], finish: str, usage: dict[str, int] | None) -> list[dict[str, Any]]:
    """OpenAI's chunk sequence for a finished answer: role, content pieces, one chunk per call, finish, usage."""
    out: list[dict[str, Any]] = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                               "finish_reason": None, "logprobs": None}]}]
    content = message.get("content") or ""
    pieces = [content[i:i + 16] for i in range(0, len(content), 16)]
    for piece in pieces:
        out.append({"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None, "logprobs": None}]})
    for index, call in enumerate(message.get("tool_calls") or []):
        out.append({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": index, **call}]},
                                 "finish_reason": None, "logprobs": None}]})
    out.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish, "logprobs": None}]})
    if usage is not None:
        out.append({"choices": [], "usage": usage})
    return out
