"""Calling the upstream that serves a version: which endpoint, which model id, how long, how often.

A version's ``serving`` (written by the registry at registration) decides the upstream:

  * ``{"kind": "openai", "credential": C, "model": M}``: any OpenAI-compatible endpoint (OpenAI
    with a fine-tuned id, vLLM, TGI, Ollama, LiteLLM) registered by an admin as credential C;
  * ``{"kind": "fewshot", "prompt": P, "base": B}``: the prompt put in front of the base B
    (an ``openai`` base as above, or a local ``hf_local`` base served by the LoRA upstream);
  * ``{"kind": "hf_lora", ...}``: the adapter loaded under the version's name on the
    OpenAI-compatible server registered as ``FTOPS_GATEWAY_LORA_UPSTREAM`` (vLLM with
    ``--enable-lora``, or ftops' model server).

Only admin-registered credentials name endpoints; a caller never supplies a URL (rule 15).
Each credential gets one pooled, keep-alive ``httpx2.AsyncClient`` through the guarded
outbound transport, so a private upstream (vLLM on the LAN) must be listed in
``FTOPS_OUTBOUND_ALLOW``. A connection failure or a 5xx is tried again up to the upstream's
retries; a timeout is not (the model may still be generating, and a second try doubles the cost).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpcore2
import httpx2
import orjson
from django.conf import settings

from ftops.common.credentials import ResolvedCredential, upstream_credential_get_secret
from ftops.common.errors import NotFound
from ftops.common.outbound import GuardedAsyncTransport, OutboundError, guarded_async_client, policy_from_settings
from ftops.gateway.http1 import ConnectFailed, ConnectTimedOut, Http1Pool, ProtocolBroken
from ftops.gateway.routing import DatabaseThreads, TTLCache
from ftops.gateway.selectors import Target

RETRY_STATUSES = frozenset({500, 502, 503, 504, 429})
# An upstream refusing our credential is our configuration's fault, not the caller's: 502.
CREDENTIAL_STATUSES = frozenset({401, 403, 407})


@dataclass(frozen=True)
class Plan:
    """How one version is called: the credential, the model id, and a prompt to put first."""

    credential: str
    model: str
    prompt: str = ""
    constrained: bool = False  # ask the LoRA upstream for schema-constrained calls (ftops_constrained)
    strict_tools: bool = False  # send the tools strict to an OpenAI upstream that takes them (gateway.strict_tools)


class UpstreamFailure(Exception):
    """The upstream failed (``kind`` upstream_error or timeout) or refused the request (client_error)."""

    def __init__(self, kind: str, message: str, *, status: int = 502, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.body = body

    @property
    def counts_against_upstream(self) -> bool:
        return self.kind in ("upstream_error", "timeout")


def plan_for(target: Target) -> Plan:
    serving = target.serving or {}
    kind = serving.get("kind")
    # ``"constrained": true`` on an OpenAI-compatible version: its tools go out strict where the
    # upstream takes them (the hosted counterpart of ftops_constrained).
    constrained = serving.get("constrained") is True
    if kind == "openai" and serving.get("credential") and serving.get("model"):
        return Plan(credential=str(serving["credential"]), model=str(serving["model"]), strict_tools=constrained)
    if kind == "hf_lora":
        if not serving.get("adapter_path") and serving.get("base_model"):
            # The base model as a version of its own (no adapter): served under its path, as the
            # LoRA upstream names it (vLLM's --model, ftops' model server likewise).
            return Plan(credential=settings.FTOPS_GATEWAY_LORA_UPSTREAM, model=str(serving["base_model"]))
        # The adapter is loaded under the version's name (registry.serving, when it starts serving);
        # ``"constrained": true`` has ftops' model server hold its calls to the tools' schemas.
        return Plan(credential=settings.FTOPS_GATEWAY_LORA_UPSTREAM, model=target.name,
                    constrained=constrained)
    if kind == "fewshot":
        base = serving.get("base") or {}
        prompt = str(serving.get("prompt") or "")
        if base.get("kind") == "openai" and base.get("credential") and base.get("model"):
            return Plan(credential=str(base["credential"]), model=str(base["model"]), prompt=prompt,
                        strict_tools=constrained)
        if base.get("kind") == "hf_local" and base.get("model_path"):
            return Plan(credential=settings.FTOPS_GATEWAY_LORA_UPSTREAM, model=str(base["model_path"]), prompt=prompt)
    raise UpstreamFailure("upstream_error", f"{target.name} has no serving config the gateway can call "
                          f"(kind {kind!r}); register it with an openai, fewshot or hf_lora serving config")


def with_prompt(messages: list[Any], prompt: str) -> list[Any]:
    """A few-shot prompt goes first; a caller's own system message follows it in the same message."""
    if not prompt:
        return messages
    if messages and isinstance(messages[0], dict) and messages[0].get("role") == "system" \
            and isinstance(messages[0].get("content"), str):
        return [{**messages[0], "content": f"{prompt}\n\n{messages[0]['content']}"}, *messages[1:]]
    return [{"role": "system", "content": prompt}, *messages]


@dataclass
class Upstream:
    name: str
    base_url: str
    client: httpx2.AsyncClient
    timeout_s: float
    retries: int
    fingerprint: str = field(repr=False)
    # Non-streamed calls go through a lean HTTP/1.1 pool (``http1``) with the same outbound
    # guard, timeouts and answer cap: httpx/httpcore cost most of the gateway's CPU per call.
    pool: Http1Pool | None = None
    authorization: bytes = field(default=b"", repr=False)
    supports_strict_tools: bool = False  # takes "strict": true functions (supports_strict_tools())


class Upstreams:
    """One pooled client per credential, rebuilt when an admin changes the URL or the value."""

    def __init__(self, *, ttl_s: float, threads: DatabaseThreads) -> None:
        self._credentials: TTLCache[ResolvedCredential | None] = TTLCache(max(ttl_s, 1.0), threads)
        self._clients: dict[str, Upstream] = {}
        self._stale: list[httpx2.AsyncClient] = []
        self._stale_pools: list[Http1Pool] = []

    async def get(self, name: str) -> Upstream:
        def load() -> ResolvedCredential | None:
            try:
                return upstream_credential_get_secret(name)
            except NotFound:
                return None

        try:
            credential = await self._credentials.get(name, load)
        except Exception as exc:
            raise UpstreamFailure("upstream_error", f"the upstream credential {name!r} cannot be read now") from exc
        if credential is None:
            raise UpstreamFailure("upstream_error", f"no upstream named {name!r} is registered; an admin adds it with "
                                  f"`manage.py upstream_credential set {name} --base-url URL`")
        fingerprint = hashlib.sha256(f"{credential.base_url}\n{credential.value}".encode()).hexdigest()
        current = self._clients.get(name)
        if current is not None and current.fingerprint == fingerprint:
            return current
        timeout_s, retries = settings.FTOPS_GATEWAY_UPSTREAM_OPTIONS.get(
            name, (settings.FTOPS_GATEWAY_TIMEOUT_S, settings.FTOPS_GATEWAY_RETRIES))
        client = guarded_async_client(timeout_s=float(timeout_s), max_bytes=64 * 1024 * 1024,
                                      headers={"Authorization": f"Bearer {credential.value}"},
                                      max_connections=settings.FTOPS_GATEWAY_MAX_CONNECTIONS)
        client.timeout = httpx2.Timeout(float(timeout_s), connect=float(settings.FTOPS_GATEWAY_CONNECT_TIMEOUT_S))
        if current is not None:
            self._stale.append(current.client)  # requests in flight may still use it; closed at shutdown
        if current is not None and current.pool is not None:
            self._stale_pools.append(current.pool)
        transport = getattr(client, "_transport", None)
        try:
            pool: Http1Pool | None = Http1Pool(
                credential.base_url, policy=transport.policy if isinstance(transport, GuardedAsyncTransport)
                else policy_from_settings(), max_connections=settings.FTOPS_GATEWAY_MAX_CONNECTIONS,
                connect_timeout_s=float(settings.FTOPS_GATEWAY_CONNECT_TIMEOUT_S), max_bytes=MAX_ANSWER_BYTES,
                ssl_context=httpx2.create_ssl_context(trust_env=False))
        except OutboundError:
            pool = None  # a URL the guard refuses outright: the httpx client reports it on use
        upstream = Upstream(name=name, base_url=credential.base_url.rstrip("/"), client=client,
                            timeout_s=float(timeout_s), retries=int(retries), fingerprint=fingerprint,
                            pool=pool, authorization=f"Bearer {credential.value}".encode(),
                            supports_strict_tools=supports_strict_tools(name, credential.base_url))
        self._clients[name] = upstream
        return upstream

    async def aclose(self) -> None:
        for client in [*(u.client for u in self._clients.values()), *self._stale]:
            with contextlib.suppress(Exception):
                await client.aclose()
        for pool in [*(u.pool for u in self._clients.values() if u.pool is not None), *self._stale_pools]:
            with contextlib.suppress(Exception):
                await pool.aclose()
        self._clients.clear()
        self._stale.clear()
        self._stale_pools.clear()


def supports_strict_tools(name: str, base_url: str) -> bool:
    """Whether the upstream takes OpenAI's strict tool schemas: as an admin set it in
    FTOPS_GATEWAY_STRICT_TOOLS, else only OpenAI's own API. vLLM, TGI, Ollama and LiteLLM speak
    the protocol but may refuse or ignore ``strict``, so they are not assumed to take it."""
    if name in settings.FTOPS_GATEWAY_STRICT_TOOLS:
        return bool(settings.FTOPS_GATEWAY_STRICT_TOOLS[name])
    return (urlsplit(base_url).hostname or "").lower() == "api.openai.com"


def _error_body(response_bytes: bytes) -> dict[str, Any] | None:
    try:
        body = orjson.loads(response_bytes)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


def _status_failure(upstream: Upstream, status: int, content: bytes) -> UpstreamFailure:
    body = _error_body(content)
    detail = ""
    if body and isinstance(body.get("error"), dict):
        detail = str(body["error"].get("message") or "")[:500]
    if status in CREDENTIAL_STATUSES:
        return UpstreamFailure("upstream_error", f"upstream {upstream.name} refused the gateway's credential "
                               f"({status}); an admin should check it")
    if status == 429:
        return UpstreamFailure("client_error", f"upstream {upstream.name} is rate limiting: {detail or 'retry later'}",
                               status=429, body=body)
    if 400 <= status < 500:
        return UpstreamFailure("client_error", detail or f"upstream {upstream.name} refused the request ({status})",
                               status=status, body=body)
    return UpstreamFailure("upstream_error", f"upstream {upstream.name} failed ({status})"
                           + (f": {detail}" if detail else ""))


def _transport_failure(upstream: Upstream, exc: Exception) -> UpstreamFailure:
    if isinstance(exc, ConnectTimedOut):
        return UpstreamFailure("timeout", f"upstream {upstream.name} did not accept a connection within "
                               f"{settings.FTOPS_GATEWAY_CONNECT_TIMEOUT_S:g}s", status=504)
    if isinstance(exc, httpx2.TimeoutException | httpcore2.TimeoutException | TimeoutError):
        return UpstreamFailure("timeout", f"upstream {upstream.name} did not answer within {upstream.timeout_s:g}s",
                               status=504)
    if isinstance(exc, OutboundError):
        return UpstreamFailure("upstream_error", f"upstream {upstream.name} may not be contacted: {exc.reason} "
                               "(an admin lists internal hosts in FTOPS_OUTBOUND_ALLOW)")
    return UpstreamFailure("upstream_error", f"upstream {upstream.name} could not be reached ({type(exc).__name__})")


def _retryable(exc: Exception) -> bool:
    return isinstance(exc, ConnectFailed | ConnectTimedOut | ProtocolBroken
                      | httpx2.ConnectError | httpx2.RemoteProtocolError | httpx2.ConnectTimeout
                      | httpx2.ReadError | httpx2.WriteError | httpcore2.ConnectError | httpcore2.ConnectTimeout
                      | httpcore2.RemoteProtocolError | httpcore2.ReadError | httpcore2.WriteError)


MAX_ANSWER_BYTES = 64 * 1024 * 1024


async def _post(upstream: Upstream, url: str, content: bytes) -> tuple[int, bytes]:
    """One POST through the guarded HTTP/1.1 pool (or the client when there is none); (status, body)."""
    if upstream.pool is None:
        response = await upstream.client.post(url, content=content, headers={"content-type": "application/json"})
        return response.status_code, response.content
    return await upstream.pool.post("/chat/completions", content, authorization=upstream.authorization)


async def _backoff(attempt: int) -> None:
    await asyncio.sleep(min(0.05 * 2**attempt, 1.0))


async def complete(upstream: Upstream, body: dict[str, Any]) -> dict[str, Any]:
    """A non-streamed chat completion: the upstream's JSON answer, or UpstreamFailure."""
    url = f"{upstream.base_url}/chat/completions"
    content = orjson.dumps(body)
    for attempt in range(upstream.retries + 1):
        last = attempt == upstream.retries
        try:
            async with asyncio.timeout(upstream.timeout_s):
                status, answer_bytes = await _post(upstream, url, content)
        except Exception as exc:
            if not last and _retryable(exc):
                await _backoff(attempt)
                continue
            raise _transport_failure(upstream, exc) from exc
        if status == 200:
            answer = _error_body(answer_bytes)
            if answer is None or not isinstance(answer.get("choices"), list):
                raise UpstreamFailure("upstream_error", f"upstream {upstream.name} answered with no chat completion")
            return answer
        if not last and status in RETRY_STATUSES:
            await _backoff(attempt)
            continue
        raise _status_failure(upstream, status, answer_bytes)
    raise AssertionError("unreachable")


@dataclass
class OpenStream:
    response: httpx2.Response

    async def lines(self) -> AsyncIterator[str]:
        async for line in self.response.aiter_lines():
            yield line

    async def aclose(self) -> None:
        await self.response.aclose()


async def open_stream(upstream: Upstream, body: dict[str, Any]) -> OpenStream:
    """Start a streamed completion: returns once the upstream answered 200 (so a failure before the
    first byte is still an HTTP error, or a fallback), or raises UpstreamFailure."""
    url = f"{upstream.base_url}/chat/completions"
    content = orjson.dumps(body)
    for attempt in range(upstream.retries + 1):
        last = attempt == upstream.retries
        request = upstream.client.build_request("POST", url, content=content,
                                                headers={"content-type": "application/json",
                                                         "accept": "text/event-stream"})
        try:
            async with asyncio.timeout(upstream.timeout_s):
                response = await upstream.client.send(request, stream=True)
        except Exception as exc:
            if not last and _retryable(exc):
                await _backoff(attempt)
                continue
            raise _transport_failure(upstream, exc) from exc
        if response.status_code == 200:
            return OpenStream(response)
        try:
            async with asyncio.timeout(upstream.timeout_s):
                error_content = await response.aread()
        except Exception:
            error_content = b""
        finally:
            await response.aclose()
        if not last and response.status_code in RETRY_STATUSES:
            await _backoff(attempt)
            continue
        raise _status_failure(upstream, response.status_code, error_content)
    raise AssertionError("unreachable")


def stream_failure(upstream: Upstream, exc: Exception) -> UpstreamFailure:
    return _transport_failure(upstream, exc)
