"""The gateway's ASGI application: OpenAI's chat completions protocol in front of ftops' models.

A plain ASGI callable rather than Django views: a request costs a JSON parse, two dict
lookups (the cached key and route) and the upstream call, with no middleware stack, so the
gateway adds milliseconds, not tens of them (bench/gateway.py). Django is set up for the
ORM, which runs only in worker threads (``routing``) and in the call writer (``recorder``).

Endpoints: ``POST /v1/chat/completions``, ``GET /v1/models`` (both with an API key holding
the ``gateway`` role), ``GET /metrics``, ``GET /healthz``, ``GET /readyz``. Every error is
OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``: 4xx for the caller's
mistakes, 502 when the upstream failed and 504 when it timed out; an unexpected exception is
a 500 in that shape too, never a page.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from django.conf import settings
from django.db import connection
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ftops.common.asgi_http import ApiError, Receive, Send, read_body, respond
from ftops.common.models import ApiKey
from ftops.gateway import metrics
from ftops.gateway.recorder import CallRecorder, record_summary
from ftops.gateway.routing import DatabaseThreads, Decision, RouteError, Router, TTLCache
from ftops.gateway.selectors import Target, gateway_models
from ftops.gateway.shadow import ShadowRunner
from ftops.gateway.strict_tools import NoteOnce, strict_request, strip_completion
from ftops.gateway.upstream import (
    OpenStream,
    Plan,
    Upstream,
    UpstreamFailure,
    Upstreams,
    complete,
    open_stream,
    plan_for,
    stream_failure,
    with_prompt,
)
from ftops.interactions.validation import ROLES

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]

# Our own keys in the body's ``metadata``; removed before the body goes upstream.
OWN_METADATA = ("service", "conversation_id")
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "invalid_request_error", 413: "invalid_request_error", 429: "rate_limit_error"}


def error_body(status: int, message: str, code: str, param: str | None = None) -> bytes:
    kind = ERROR_TYPES.get(status, "api_error" if status < 500 else "upstream_error" if status in (502, 504)
                           else "server_error")
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})




def header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1")).strip()
    return ""


def validate_request(body: Any) -> dict[str, Any]:
    """The checks OpenAI makes before it calls a model; anything subtler is the upstream's to refuse."""
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object", code="invalid_body")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise ApiError(400, "'model' is required: 'ftops/<service>', 'production', 'canary' or a version name",
                       code="missing_model", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty array of {role, content} objects", code="invalid_messages",
                       param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise ApiError(400, f"messages[{index}] must be an object whose role is one of {sorted(ROLES)}",
                           code="invalid_messages", param=f"messages[{index}]")
    tools = body.get("tools")
    if tools is not None and (not isinstance(tools, list)
                              or any(not isinstance(t, dict) or not isinstance(t.get("function"), dict)
                                     or not isinstance(t["function"].get("name"), str) for t in tools)):
        raise ApiError(400, "'tools' must be an array of {type: 'function', function: {name, parameters}}",
                       code="invalid_tools", param="tools")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise ApiError(400, "'stream' must be true or false", code="invalid_stream", param="stream")
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise ApiError(400, "'metadata' must be an object", code="invalid_metadata", param="metadata")
    try:
        # orjson reads 1024 levels of nesting but writes at most 255: a body it cannot write again
        # could not be sent upstream or recorded, so it is refused here (a few µs for a usual body).
        orjson.dumps(body)
    except orjson.JSONEncodeError as exc:
        raise ApiError(400, f"the body cannot be forwarded: {exc} (at most 255 levels of nesting)",
                       code="invalid_body") from exc
    return body


def sticky_key(scope: Scope, body: dict[str, Any]) -> str:
    """What keeps a conversation on one arm: the client's conversation id, its user id, or the
    conversation's first message (a chat resends its history, so the first message is stable)."""
    metadata = body.get("metadata") or {}
    explicit = header(scope, b"x-ftops-conversation") or str(metadata.get("conversation_id") or "") \
        or str(body.get("user") or "")
    if explicit:
        return explicit
    first = body["messages"][0]
    return "m:" + hashlib.blake2b(orjson.dumps(first, option=orjson.OPT_SORT_KEYS), digest_size=12).hexdigest()


def upstream_body(body: dict[str, Any], plan: Plan) -> dict[str, Any]:
    out = dict(body)
    out["model"] = plan.model
    out["messages"] = with_prompt(body["messages"], plan.prompt)
    if plan.constrained:
        out["ftops_constrained"] = True
    metadata = body.get("metadata")
    if isinstance(metadata, dict):
        rest = {k: v for k, v in metadata.items() if k not in OWN_METADATA}
        if rest:
            out["metadata"] = rest
        else:
            out.pop("metadata", None)
    return out


@dataclass
class Call:
    """One request's bookkeeping, for the response headers, the metrics and the call record."""

    id: str
    started: float
    api_key: ApiKey
    body: dict[str, Any]
    decision: Decision
    stream: bool
    fallback_from: Target | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    strict_note: str = ""  # whether the answering version's tools went strict, and if not why


class GatewayApp:
    def __init__(self, *, recorder: CallRecorder | None = None) -> None:
        self.threads = DatabaseThreads()
        self.router = Router(ttl_s=settings.FTOPS_GATEWAY_CACHE_S,
                             canary_fallback=settings.FTOPS_GATEWAY_CANARY_FALLBACK, threads=self.threads)
        self.upstreams = Upstreams(ttl_s=settings.FTOPS_GATEWAY_CACHE_S, threads=self.threads)
        self._models: TTLCache[list[dict[str, Any]]] = TTLCache(settings.FTOPS_GATEWAY_CACHE_S, self.threads)
        self.recorder = recorder or CallRecorder(spool_dir=settings.FTOPS_GATEWAY_SPOOL_DIR,
                                                 flush_s=settings.FTOPS_GATEWAY_FLUSH_MS / 1000,
                                                 batch=settings.FTOPS_GATEWAY_BATCH)
        self.max_body = settings.FTOPS_GATEWAY_MAX_BODY_MB * 1024 * 1024
        self.shadow = ShadowRunner(self)  # copies production calls to shadow versions, off the request path
        self.note_strict = NoteOnce()

    # --- ASGI ---------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        try:
            if path == "/v1/chat/completions":
                if method != "POST":
                    raise ApiError(405, "use POST", code="method_not_allowed")
                await self.chat_completions(scope, receive, send)
            elif path == "/v1/models" and method == "GET":
                await self.models(scope, send)
            elif path.startswith("/v1/models/") and method == "GET":
                await self.models(scope, send, one=path[len("/v1/models/"):])
            elif path == "/metrics":
                await respond(send, 200, generate_latest(metrics.REGISTRY), content_type=CONTENT_TYPE_LATEST.encode())
            elif path == "/healthz":
                await respond(send, 200, b'{"status":"ok"}')
            elif path == "/readyz":
                await self.readyz(send)
            else:
                raise ApiError(404, f"no endpoint {method} {path}; the gateway serves /v1/chat/completions and "
                               "/v1/models", code="not_found")
        except ApiError as exc:
            metrics.REJECTED.labels(status=str(exc.status)).inc()
            await respond(send, exc.status, error_body(exc.status, exc.message, exc.code, exc.param),
                          headers=exc.headers)
        except ConnectionAbortedError:
            return
        except Exception:
            logger.exception("gateway: unexpected error on %s %s", method, path)
            with contextlib.suppress(Exception):
                await respond(send, 500, error_body(500, "the gateway failed on this request; it is logged",
                                                    "internal_error"))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.recorder.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.upstreams.aclose()
                self.recorder.stop()
                self.threads.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # --- endpoints ----------------------------------------------------------------------------

    async def authenticate(self, scope: Scope) -> ApiKey:
        auth = header(scope, b"authorization")
        secret = auth[7:].strip() if auth[:7].lower() == "bearer " else header(scope, b"x-api-key")
        if not secret:
            raise ApiError(401, "send an ftops API key: Authorization: Bearer ftk_…", code="invalid_api_key")
        try:
            key = await self.router.api_key(secret)
        except Exception as exc:
            raise ApiError(503, "API keys cannot be checked right now; retry shortly", code="unavailable",
                           headers={"retry-after": "1"}) from exc
        if key is None:
            raise ApiError(401, "invalid or revoked API key", code="invalid_api_key")
        if not self.router.may_call(key):
            raise ApiError(403, "this API key lacks the 'gateway' role", code="permission_denied")
        return key

    async def models(self, scope: Scope, send: Send, one: str | None = None) -> None:
        await self.authenticate(scope)
        rows = await self._models.get("models", gateway_models)
        data = [{"object": "model", **row} for row in rows]
        if one is not None:
            found = next((row for row in data if row["id"] == one), None)
            if found is None:
                raise ApiError(404, f"the model '{one}' is not served", code="model_not_found", param="model")
            await respond(send, 200, orjson.dumps(found))
            return
        await respond(send, 200, orjson.dumps({"object": "list", "data": data}))

    async def readyz(self, send: Send) -> None:
        def ping() -> bool:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            return True

        try:
            database = await asyncio.wait_for(self.threads.run(ping), timeout=2)
        except Exception:
            database = False
        spool_ok = True
        try:
            self.recorder.spool_dir.mkdir(parents=True, exist_ok=True)
        except OSError:
            spool_ok = False
        # Ready while calls can be logged somewhere: a database outage is covered by the spool.
        ready = database or spool_ok
        body = {"ready": ready, "database": database, "spool_writable": spool_ok, **record_summary(self.recorder)}
        await respond(send, 200 if ready else 503, orjson.dumps(body))

    async def chat_completions(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        api_key = await self.authenticate(scope)
        raw = await read_body(receive, self.max_body)
        try:
            body = validate_request(orjson.loads(raw))
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, f"the body is not valid JSON: {exc}", code="invalid_json") from exc
        metadata = body.get("metadata") or {}
        service_hint = header(scope, b"x-ftops-service") or str(metadata.get("service") or "")
        try:
            decision = await self.router.decide(model=body["model"].strip(), service_hint=service_hint,
                                                sticky_key=sticky_key(scope, body))
        except RouteError as exc:
            raise ApiError(exc.status, exc.message, code=exc.code, param=exc.param) from exc
        call = Call(id=f"chatcmpl-{uuid.uuid4().hex}", started=started, api_key=api_key, body=body,
                    decision=decision, stream=bool(body.get("stream")))
        if call.stream:
            await self._stream(call, send)
        else:
            await self._complete(call, send)

    # --- non-streamed ---------------------------------------------------------------------------

    async def _complete(self, call: Call, send: Send) -> None:
        target = call.decision.target
        try:
            answer, upstream = await self._attempt_complete(call, target)
        except UpstreamFailure as failure:
            fallback = call.decision.fallback
            if fallback is None or not failure.counts_against_upstream:
                await self._fail(call, send, target, failure)
                return
            call.fallback_from = target
            target = fallback
            try:
                answer, upstream = await self._attempt_complete(call, target)
            except UpstreamFailure as second:
                await self._fail(call, send, target, second)
                return
        answer["id"] = call.id
        answer["model"] = target.name
        latency_ms = (time.perf_counter() - call.started) * 1000
        choices = answer.get("choices") or []
        message = choices[0].get("message") if choices and isinstance(choices[0], dict) else None
        self._record(call, target, upstream, latency_ms, message=message if isinstance(message, dict) else {},
                     finish_reason=str(choices[0].get("finish_reason") or "") if choices else "",
                     usage=answer.get("usage"))
        await respond(send, 200, orjson.dumps(answer), headers=self._headers(call, target))

    async def _attempt_complete(self, call: Call, target: Target) -> tuple[dict[str, Any], Upstream | None]:
        upstream: Upstream | None = None
        try:
            plan = plan_for(target)
            upstream = await self.upstreams.get(plan.credential)
            request = strict_request(upstream_body(call.body, plan), plan, upstream, stream=False)
            call.strict_note = request.note
            self.note_strict(target.name, request.note)
            answer = await complete(upstream, request.body)
            strip_completion(answer, request.originals)
            return answer, upstream
        except UpstreamFailure as failure:
            self._note_failure(call, target, upstream, failure)
            raise

    # --- streamed -------------------------------------------------------------------------------

    async def _open(self, call: Call, target: Target) -> tuple[OpenStream, Upstream, bool]:
        upstream: Upstream | None = None
        try:
            plan = plan_for(target)
            upstream = await self.upstreams.get(plan.credential)
            request = strict_request(upstream_body(call.body, plan), plan, upstream, stream=True)
            call.strict_note = request.note
            self.note_strict(target.name, request.note)
            body = request.body
            options = body.get("stream_options")
            # Usage is what the interaction's tokens come from; asked for here, and its extra
            # chunk is not passed on to a client that did not ask for it itself.
            hide_usage = not (isinstance(options, dict) and options.get("include_usage"))
            body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
            return await open_stream(upstream, body), upstream, hide_usage
        except UpstreamFailure as failure:
            self._note_failure(call, target, upstream, failure)
            raise

    async def _stream(self, call: Call, send: Send) -> None:
        target = call.decision.target
        try:
            opened, upstream, hide_usage = await self._open(call, target)
        except UpstreamFailure as first:
            fallback = call.decision.fallback
            if fallback is None or not first.counts_against_upstream:
                await self._fail(call, send, target, first)
                return
            call.fallback_from = target
            target = fallback
            try:
                opened, upstream, hide_usage = await self._open(call, target)
            except UpstreamFailure as second:
                await self._fail(call, send, target, second)
                return
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"),
                   (b"x-accel-buffering", b"no")]
        headers += [(k.encode(), v.encode()) for k, v in self._headers(call, target).items()]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        collected = StreamCollector()
        broken: UpstreamFailure | None = None
        client_gone = False
        try:
            async for line in opened.lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    chunk = orjson.loads(data)
                except orjson.JSONDecodeError:
                    continue
                if not isinstance(chunk, dict):
                    continue
                collected.add(chunk)
                if hide_usage and not chunk.get("choices") and chunk.get("usage"):
                    continue
                chunk["id"] = call.id
                chunk["model"] = target.name
                if hide_usage:
                    chunk.pop("usage", None)
                try:
                    await send({"type": "http.response.body", "body": b"data: " + orjson.dumps(chunk) + b"\n\n",
                                "more_body": True})
                except OSError:
                    client_gone = True
                    break
        except Exception as exc:
            broken = stream_failure(upstream, exc)
        finally:
            await opened.aclose()
        latency_ms = (time.perf_counter() - call.started) * 1000
        if broken is not None:
            self._note_failure(call, target, upstream, broken)
            self._finish_errors(call, target, upstream, latency_ms, broken)
            with contextlib.suppress(OSError):
                error = orjson.loads(error_body(broken.status, broken.message, broken.kind))
                await send({"type": "http.response.body", "body": b"data: " + orjson.dumps(error) + b"\n\n",
                            "more_body": False})
            return
        self._record(call, target, upstream, latency_ms, message=collected.message(),
                     finish_reason=collected.finish_reason, usage=collected.usage)
        if not client_gone:
            with contextlib.suppress(OSError):
                await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})

    # --- bookkeeping ----------------------------------------------------------------------------

    def _headers(self, call: Call, target: Target) -> dict[str, str]:
        headers = {"x-ftops-version": target.name, "x-ftops-arm": target.arm, "x-ftops-interaction-id": call.id}
        if call.fallback_from is not None:
            headers["x-ftops-fallback-from"] = call.fallback_from.name
        return headers

    def _note_failure(self, call: Call, target: Target, upstream: Upstream | None, failure: UpstreamFailure) -> None:
        """A failure of one arm: counted now, written with the call (or alone if the call fails)."""
        name = upstream.name if upstream else "-"
        if failure.counts_against_upstream:
            metrics.ERRORS.labels(target.scope, target.arm, name, failure.kind).inc()
            call.errors.append({"target": target, "upstream": name, "kind": failure.kind})

    def _finish_errors(self, call: Call, target: Target, upstream: Upstream | None, latency_ms: float,
                       failure: UpstreamFailure) -> None:
        for error in call.errors:
            failed: Target = error["target"]
            self.recorder.add({"kind": "error", "id": call.id, "api_key_id": call.api_key.pk,
                               "service": call.decision.service, "model_version_id": failed.model_version_id,
                               "version": failed.name, "scope": failed.scope, "arm": failed.arm,
                               "finished_at": time.time(), "latency_ms": latency_ms, "error": error["kind"],
                               "fallback": call.fallback_from is not None and failed is call.fallback_from})
        call.errors.clear()
        name = upstream.name if upstream else "-"
        metrics.REQUESTS.labels(target.scope, target.arm, name, str(failure.status)).inc()

    async def _fail(self, call: Call, send: Send, target: Target, failure: UpstreamFailure) -> None:
        latency_ms = (time.perf_counter() - call.started) * 1000
        self._finish_errors(call, target, None, latency_ms, failure)
        if failure.kind == "client_error" and failure.body and isinstance(failure.body.get("error"), dict):
            body = orjson.dumps(failure.body)  # the upstream's own OpenAI error, as the caller would get it
        else:
            body = error_body(failure.status, failure.message, failure.kind)
        await respond(send, failure.status, body, headers=self._headers(call, target))

    def _record(self, call: Call, target: Target, upstream: Upstream | None, latency_ms: float, *,
                message: dict[str, Any], finish_reason: str, usage: Any) -> None:
        name = upstream.name if upstream else "-"
        metrics.requests(target.scope, target.arm, name, "200").inc()
        metrics.latency(target.scope, target.arm, name).observe(latency_ms / 1000)
        if call.errors:  # the canary failed and production answered: the canary's error is written too
            for error in call.errors:
                failed: Target = error["target"]
                self.recorder.add({"kind": "error", "id": call.id, "api_key_id": call.api_key.pk,
                                   "service": call.decision.service, "model_version_id": failed.model_version_id,
                                   "version": failed.name, "scope": failed.scope, "arm": failed.arm,
                                   "finished_at": time.time(), "latency_ms": latency_ms, "error": error["kind"],
                                   "fallback": True})
                metrics.ERRORS.labels(failed.scope, failed.arm, error["upstream"], "fallback").inc()
        body = call.body
        tokens = usage.get("total_tokens") if isinstance(usage, dict) else None
        content = message.get("content")
        meta: dict[str, Any] = {"gateway": True, "arm": target.arm, "deployment_scope": target.scope,
                                "upstream": name, "stream": call.stream, "finish_reason": finish_reason,
                                "request_model": body.get("model")}
        if body.get("tool_choice") is not None:
            meta["tool_choice"] = body["tool_choice"]
        if isinstance(usage, dict):
            meta["usage"] = {k: usage[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens") if k in usage}
        if call.fallback_from is not None:
            meta["fallback_from"] = call.fallback_from.name
        if call.strict_note:
            meta["strict_tools"] = call.strict_note
        payload = {
            "id": call.id, "service": call.decision.service, "timestamp": datetime.now(UTC).isoformat(),
            "messages": body["messages"], "tools": body.get("tools") or [],
            "tool_calls": message.get("tool_calls") or [],
            "response_text": content if isinstance(content, str) else "",
            "latency_ms": round(latency_ms), "model_version": target.name, "metadata": meta,
        }
        if isinstance(tokens, int) and tokens >= 0:
            payload["tokens_used"] = tokens
        self.recorder.add({"kind": "call", "id": call.id, "api_key_id": call.api_key.pk,
                           "service": call.decision.service, "model_version_id": target.model_version_id,
                           "version": target.name, "scope": target.scope, "arm": target.arm,
                           "finished_at": time.time(), "latency_ms": latency_ms, "payload": payload,
                           "fallback": False})
        self.shadow.after_production(call, target, message)


class StreamCollector:
    """Puts a streamed answer back together (content, parallel tool calls by index, usage) for the log."""

    def __init__(self) -> None:
        self.content: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish_reason = ""
        self.usage: dict[str, Any] | None = None

    def add(self, chunk: dict[str, Any]) -> None:
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                self.content.append(delta["content"])
            for part in delta.get("tool_calls") or []:
                if not isinstance(part, dict):
                    continue
                slot = self.calls.setdefault(int(part.get("index", 0)), {"id": "", "type": "function",
                                                                          "function": {"name": "", "arguments": ""}})
                if part.get("id"):
                    slot["id"] = part["id"]
                function = part.get("function") or {}
                if function.get("name"):
                    slot["function"]["name"] += function["name"]
                if function.get("arguments"):
                    slot["function"]["arguments"] += function["arguments"]

    def message(self) -> dict[str, Any]:
        calls = [self.calls[i] for i in sorted(self.calls)]
        return {"role": "assistant", "content": "".join(self.content) or None, "tool_calls": calls or None}


def create_app() -> GatewayApp:
    return GatewayApp()
