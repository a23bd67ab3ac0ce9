"""The one guarded HTTP client for every request the server sends on a caller's behalf.

A URL that an API caller (or a catalog entry, or a gateway upstream) names must not turn the
server into a proxy into its own network. Every server-side fetch goes through here:

- only ``http`` and ``https``;
- the host is resolved and every address it resolves to is checked: loopback, private,
  link-local, shared (CGNAT), multicast, reserved, unspecified and cloud-metadata addresses
  are refused, also when hidden inside an IPv6 address (``::ffff:127.0.0.1``, 6to4, NAT64,
  Teredo), unless ``FTOPS_OUTBOUND_ALLOW`` names the host or a network holding the address;
- the connection goes to the address that was checked, so a DNS answer that changes between
  the check and the connect (rebinding) cannot slip through; the check runs at connect time
  inside the transport, so redirects, keep-alive reconnects and SDK clients are covered too;
- ``guarded_get`` follows redirects itself, a bounded number of hops, each one re-checked;
- one total deadline covers resolve + connect + headers + the whole body, and the body is
  capped in bytes;
- failures of every kind carry one public message (``PUBLIC_MESSAGE``): callers show that and
  keep ``reason`` for the log and the audit row, so the answer says nothing about which
  internal ports are open.

Entry points: ``guarded_get`` / ``guarded_get_async`` for a single GET, and
``guarded_async_client`` for code that needs an ``httpx2.AsyncClient`` (the MCP SDK's
streamable-HTTP transport takes one). Only the first imports Django settings, lazily, so
``ftops.settings`` can use ``parse_allow_list`` to validate the allow-list at start-up.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit, urlunsplit

import anyio
import httpcore2
import httpx2

from ftops.common.env import SettingsError

logger = logging.getLogger("ftops.outbound")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
T = TypeVar("T")

SCHEMES = frozenset({"http", "https"})
PUBLIC_MESSAGE = "the URL could not be used: it is not allowed, cannot be reached or did not answer in time"
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_BYTES = 5 * 1024 * 1024
DEFAULT_MAX_REDIRECTS = 5

# Instance-metadata services hand out cloud credentials. Most sit in link-local or private
# ranges (refused anyway); Azure's wire server and Alibaba's are listed because a broad
# allow-list entry must not open them: only an entry naming the exact address does.
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure IMDS, OpenStack, Oracle, DigitalOcean
    "169.254.169.253",  # AWS DNS resolver
    "169.254.170.2",  # AWS ECS task credentials
    "fd00:ec2::254",  # AWS IMDS over IPv6
    "fd00:ec2::253",
    "100.100.100.200",  # Alibaba Cloud
    "168.63.129.16",  # Azure wire server (a public address)
    "192.0.0.192",  # Oracle Cloud
))
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata", "instance-data",
                            "instance-data.ec2.internal"})

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


# ---------------------------------------------------------------- errors

class OutboundError(Exception):
    """A fetch that did not produce an answer. ``str()`` is the public message for every kind;
    ``reason`` (what really happened) is for the log and the audit row only.

    ``kind``: ``refused`` (policy), ``unreachable`` (DNS or connect failed), ``timeout`` (the
    total deadline passed), ``too_large`` (body over the cap), ``redirects`` (too many hops),
    ``protocol`` (the peer spoke broken HTTP).
    """

    kind = "unreachable"

    def __init__(self, reason: str, *, url: str = "", host: str = "", address: str = "",
                 kind: str | None = None) -> None:
        super().__init__(PUBLIC_MESSAGE)
        self.reason = reason
        self.url = redact_url(url) if url else ""
        self.host = host
        self.address = address
        if kind is not None:
            self.kind = kind

    @property
    def public_message(self) -> str:
        return PUBLIC_MESSAGE

    def as_detail(self) -> dict[str, str]:
        """What an audit row records about the failure."""
        out = {"kind": self.kind, "reason": self.reason, "url": self.url}
        if self.host:
            out["host"] = self.host
        if self.address:
            out["address"] = self.address
        return out


class OutboundRefused(OutboundError):
    """The destination is not allowed by the outbound policy."""

    kind = "refused"


def redact_url(url: str) -> str:
    """``url`` without a user name or password, for logs and audit rows."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url[:300]
    if parts.username is None and parts.password is None:
        return url[:2000]
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))[:2000]


# ---------------------------------------------------------------- policy

def _normalize_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo, NAT64, compatible)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in net for net in _NAT64) or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_refusal(address: IPAddress) -> str | None:
    """Why ``address`` is off limits without an allow-list entry, or None for a public address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address_refusal(address.ipv4_mapped)  # the socket reaches that IPv4 host; judge it alone
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            why = address_refusal(inner)
            if why is not None:
                return f"{why} (as {inner} inside the IPv6 address)"
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "a shared (CGNAT) address"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "not a globally routable address"
    return None


@dataclass(frozen=True)
class OutboundPolicy:
    """Exceptions to the private-range ban: host names and networks from ``FTOPS_OUTBOUND_ALLOW``.

    Public addresses are always allowed; the list only opens internal destinations. A named
    host is trusted whatever it resolves to, except a metadata address.
    """

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    def host_refusal(self, host: str) -> str | None:
        name = _normalize_host(host)
        if not name:
            return "the URL has no host"
        if name in METADATA_HOSTS and name not in self.hosts:
            return f"{name} is a cloud metadata host name"
        return None

    def refusal(self, address: IPAddress, *, host: str) -> str | None:
        """Why connecting to ``address`` (resolved from ``host``) is refused, or None."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # the socket reaches the IPv4 host; judge that one
        if address in METADATA_ADDRESSES:
            exact = any(net.num_addresses == 1 and address in net for net in self.networks)
            return None if exact else "a cloud metadata address (allowed only by an entry naming it exactly)"
        if _normalize_host(host) in self.hosts:
            return None
        if any(address.version == net.version and address in net for net in self.networks):
            return None
        return address_refusal(address)


_HOST_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


def parse_allow_list(entries: Iterable[str], *, setting: str = "FTOPS_OUTBOUND_ALLOW") -> OutboundPolicy:
    """Hosts and CIDR networks (``127.0.0.1/32,10.1.0.0/16,mcp.internal.example``), checked strictly:
    a typo or a network with host bits set stops start-up instead of quietly allowing the wrong thing."""
    hosts: set[str] = set()
    networks: list[IPNetwork] = []
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        looks_like_ip = "/" in entry or ":" in entry or entry.replace(".", "").isdigit()
        if looks_like_ip:
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=True))
            except ValueError as exc:
                raise SettingsError(f"{setting} entry {entry!r} is not an IP address or CIDR network ({exc}); "
                                    "e.g. 127.0.0.1/32, 10.0.0.0/8 or fd00::/8") from None
            continue
        name = _normalize_host(entry)
        labels = name.split(".")
        if not name or len(name) > 253 or not all(
                label and len(label) <= 63 and set(label) <= _HOST_LABEL_CHARS
                and not label.startswith("-") and not label.endswith("-") for label in labels):
            raise SettingsError(f"{setting} entry {entry!r} is neither a host name nor an IP network; "
                                "give host names (mcp.internal.example) or CIDR networks (10.0.0.0/8), "
                                "comma-separated, without a scheme or port")
        hosts.add(name)
    return OutboundPolicy(hosts=frozenset(hosts), networks=tuple(networks))


@functools.lru_cache(maxsize=8)
def _cached_policy(entries: tuple[str, ...]) -> OutboundPolicy:
    return parse_allow_list(entries)


def policy_from_settings() -> OutboundPolicy:
    """The policy for ``settings.FTOPS_OUTBOUND_ALLOW`` (read on every call, so tests can override it)."""
    from django.conf import settings

    return _cached_policy(tuple(getattr(settings, "FTOPS_OUTBOUND_ALLOW", ())))


@dataclass(frozen=True)
class Limits:
    timeout_s: float = DEFAULT_TIMEOUT_S  # total: resolve, connect, headers and the whole body
    max_bytes: int = DEFAULT_MAX_BYTES
    max_redirects: int = DEFAULT_MAX_REDIRECTS


def limits_from_settings(**overrides: Any) -> Limits:
    from django.conf import settings

    def pick(name: str, setting: str, default: float) -> Any:
        given = overrides.get(name)
        return given if given is not None else getattr(settings, setting, default)

    return Limits(timeout_s=float(pick("timeout_s", "FTOPS_OUTBOUND_TIMEOUT_S", DEFAULT_TIMEOUT_S)),
                  max_bytes=int(pick("max_bytes", "FTOPS_OUTBOUND_MAX_BYTES", DEFAULT_MAX_BYTES)),
                  max_redirects=int(pick("max_redirects", "FTOPS_OUTBOUND_MAX_REDIRECTS", DEFAULT_MAX_REDIRECTS)))


# ---------------------------------------------------------------- checks

def check_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of ``url`` if it is one we may try at all; OutboundRefused if not."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OutboundRefused(f"malformed URL: {exc}", url=url) from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise OutboundRefused(f"scheme {scheme or '(none)'!r} is not http or https", url=url)
    host = parts.hostname or ""
    if not host:
        raise OutboundRefused("the URL has no host", url=url)
    return scheme, host, port or (443 if scheme == "https" else 80)


async def resolve_checked(host: str, port: int, policy: OutboundPolicy, *, url: str = "") -> list[str]:
    """The addresses ``host`` resolves to, all of them allowed; OutboundRefused if any is not.

    Refusing when *any* address is forbidden (rather than skipping it) keeps a name that mixes
    a public and an internal record from being a coin toss.
    """
    name = _normalize_host(host)
    why = policy.host_refusal(name)
    if why is not None:
        raise OutboundRefused(why, url=url, host=name)
    try:
        infos = await anyio.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise OutboundError(f"cannot resolve {name}: {exc}", url=url, host=name) from None
    addresses = list(dict.fromkeys(str(info[4][0]).split("%", 1)[0] for info in infos))
    if not addresses:
        raise OutboundError(f"{name} resolves to no address", url=url, host=name)
    for text in addresses:
        reason = policy.refusal(ipaddress.ip_address(text), host=name)
        if reason is not None:
            message = f"{text} is {reason}" if name == text else f"{name} resolves to {text}, {reason}"
            raise OutboundRefused(message, url=url, host=name, address=text)
    return addresses


async def check_url_async(url: str, *, policy: OutboundPolicy | None = None) -> list[str]:
    """Refuse ``url`` early (scheme, host, every resolved address). The transport checks again at
    connect time; this only gives a clean error before an SDK wraps it in its own."""
    _, host, port = check_url(url)
    return await resolve_checked(host, port, policy or policy_from_settings(), url=url)


# ---------------------------------------------------------------- transport

class _GuardedBackend(httpcore2.AsyncNetworkBackend):
    """Resolves and checks at connect time, then connects to the checked address itself.

    TLS still verifies the certificate against the URL's host name: httpcore passes the
    origin's host as ``server_hostname`` to ``start_tls``, not the address we dialled.
    """

    def __init__(self, policy: OutboundPolicy, errors: list[OutboundError]) -> None:
        self._policy = policy
        self._errors = errors
        self._inner = httpcore2.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore2.AsyncNetworkStream:
        try:
            addresses = await resolve_checked(host, port, self._policy)
        except OutboundError as exc:
            exc.url = exc.url or f"{host}:{port}"
            self._errors.append(exc)
            _log(exc)
            raise
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                     socket_options=socket_options)
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore2.AsyncNetworkStream:
        raise OutboundRefused("unix sockets are not an outbound destination")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _CappedStream(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, max_bytes: int, url: str,
                 errors: list[OutboundError]) -> None:
        self._inner = inner
        self._max_bytes = max_bytes
        self._url = url
        self._errors = errors

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._inner:
            seen += len(chunk)
            if seen > self._max_bytes:
                error = OutboundError(f"the response body is larger than {self._max_bytes} bytes", url=self._url,
                                      kind="too_large")
                self._errors.append(error)
                raise error
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class GuardedAsyncTransport(httpx2.AsyncHTTPTransport):
    """An httpx2 transport that refuses forbidden destinations and caps every response body.

    ``errors`` collects the guard's own failures, so a caller behind an SDK that rewraps
    exceptions (the MCP client does) can still tell a refusal from a dead server.
    """

    def __init__(self, *, policy: OutboundPolicy | None = None, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_connections: int = 20) -> None:
        super().__init__(trust_env=False)
        self.policy = policy or policy_from_settings()
        self.max_bytes = max_bytes
        self.errors: list[OutboundError] = []
        # The parent built a pool with the default backend; swap in one with the guarded
        # backend (httpx exposes no other hook for it). No proxies: trust_env=False above.
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx2.create_ssl_context(trust_env=False),
            max_connections=max_connections, network_backend=_GuardedBackend(self.policy, self.errors),
        )

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = str(request.url)
        if request.url.scheme not in SCHEMES:
            refused = OutboundRefused(f"scheme {request.url.scheme!r} is not http or https", url=url)
            self.errors.append(refused)
            raise refused
        response = await super().handle_async_request(request)
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            await response.aclose()
            error = OutboundError(f"the response announces {length} bytes, over the cap of {self.max_bytes}",
                                  url=url, kind="too_large")
            self.errors.append(error)
            raise error
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        return httpx2.Response(status_code=response.status_code, headers=response.headers,
                               stream=_CappedStream(response.stream, self.max_bytes, url, self.errors),
                               extensions=response.extensions)


def guarded_async_client(*, timeout_s: float, max_bytes: int = DEFAULT_MAX_BYTES,
                         policy: OutboundPolicy | None = None,
                         headers: Mapping[str, str] | None = None,
                         max_connections: int = 20) -> httpx2.AsyncClient:
    """An ``httpx2.AsyncClient`` whose every connection is checked (for SDKs that take a client).

    ``timeout_s`` bounds each connect and read; the caller still owns the *total* deadline
    (``anyio.fail_after``), since a server can trickle bytes under any per-read timeout.
    Redirects are not followed here; ``guarded_get`` follows them hop by hop.
    """
    return httpx2.AsyncClient(transport=GuardedAsyncTransport(policy=policy, max_bytes=max_bytes,
                                                              max_connections=max_connections),
                              timeout=httpx2.Timeout(timeout_s), follow_redirects=False, trust_env=False,
                              headers=dict(headers or {}))


def transport_errors(client: httpx2.AsyncClient) -> list[OutboundError]:
    """The guard failures seen by a client from ``guarded_async_client``."""
    transport = getattr(client, "_transport", None)
    return list(transport.errors) if isinstance(transport, GuardedAsyncTransport) else []


# ---------------------------------------------------------------- one GET

@dataclass(frozen=True)
class Fetched:
    url: str  # after redirects
    status_code: int
    headers: dict[str, str]
    content: bytes = field(repr=False)
    redirects: int = 0

    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


_REDIRECTS = frozenset({301, 302, 303, 307, 308})


async def guarded_get_async(url: str, *, timeout_s: float | None = None, max_bytes: int | None = None,
                            max_redirects: int | None = None, policy: OutboundPolicy | None = None,
                            headers: Mapping[str, str] | None = None) -> Fetched:
    """GET ``url`` under the outbound policy and limits (settings unless given); any status code
    comes back as an answer, everything else raises ``OutboundError``."""
    limits = limits_from_settings(timeout_s=timeout_s, max_bytes=max_bytes, max_redirects=max_redirects)
    policy = policy or policy_from_settings()
    current = url
    try:
        with anyio.fail_after(limits.timeout_s):
            async with guarded_async_client(timeout_s=limits.timeout_s, max_bytes=limits.max_bytes, policy=policy,
                                            headers=headers) as client:
                for hop in range(limits.max_redirects + 1):
                    check_url(current)
                    async with client.stream("GET", current) as response:
                        location = response.headers.get("location")
                        if response.status_code in _REDIRECTS and location:
                            current = urljoin(current, location)
                            continue
                        body = b"".join([chunk async for chunk in response.aiter_raw()])
                        return Fetched(url=current, status_code=response.status_code,
                                       headers=dict(response.headers), content=body, redirects=hop)
                raise OutboundError(f"more than {limits.max_redirects} redirects", url=url, kind="redirects")
    except OutboundError as exc:
        exc.url = exc.url or redact_url(current)
        _log(exc)
        raise
    except TimeoutError:
        error = OutboundError(f"no complete answer within {limits.timeout_s:g} s (at {redact_url(current)})",
                              url=url, kind="timeout")
    except httpx2.TimeoutException as exc:
        error = OutboundError(f"{type(exc).__name__} at {redact_url(current)}", url=url, kind="timeout")
    except (httpx2.TransportError, OSError) as exc:
        error = OutboundError(f"{type(exc).__name__}: {exc}", url=url)
    except httpx2.HTTPError as exc:
        error = OutboundError(f"{type(exc).__name__}: {exc}", url=url, kind="protocol")
    _log(error)
    raise error


def guarded_get(url: str, **kwargs: Any) -> Fetched:
    """``guarded_get_async`` for synchronous code (views, tasks, commands)."""
    return run_sync(guarded_get_async, url, **kwargs)


def run_sync(function: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """Run a coroutine function to completion from synchronous code, even under a running loop."""
    call = functools.partial(function, *args, **kwargs)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return anyio.run(call)
    with ThreadPoolExecutor(max_workers=1) as pool:  # a loop is running in this thread (async view, shell)
        return pool.submit(anyio.run, call).result()


def _log(error: OutboundError) -> None:
    if getattr(error, "_logged", False):
        return
    error._logged = True  # type: ignore[attr-defined]  # the transport and guarded_get both see it
    logger.warning("outbound fetch of %s failed (%s): %s", error.url, error.kind, error.reason)


def record_refusal(error: OutboundRefused, *, by: Any, purpose: str) -> None:
    """Audit a refused destination (who asked, for what, and the real reason)."""
    from ftops.common.models import AuditAction
    from ftops.common.services import audit_record

    audit_record(action=AuditAction.OUTBOUND_REFUSED, by=by, object_type="outbound",
                 object_id=(error.host or error.url)[:120], detail={"purpose": purpose, **error.as_detail()})
