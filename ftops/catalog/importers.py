"""Reading tool definitions from their sources, without touching the database.

Sources: a live MCP server (stdio command or streamable-HTTP URL, through the official
``mcp`` SDK's ``tools/list``), per-tool training-data documents, an OpenAI ``tools`` list
and BFCL function docs. Everything becomes ``ToolDef``s (plus the documents, whose examples
the catalog services write through curation).
"""

from __future__ import annotations

import json
import shlex
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.utils.text import slugify

from ftops.catalog.schema import infer_schema, normalize_schema
from ftops.common.errors import ValidationFailed
from ftops.common.outbound import OutboundError

FORMATS = ("mcp", "mcp-http", "tool-docs", "openai-tools", "bfcl")
FILE_FORMATS = ("tool-docs", "openai-tools", "bfcl")
MAX_FILE_BYTES = 50 * 1024 * 1024
MCP_TIMEOUT_S = 60.0
MCP_MAX_PAGES = 100


class ImportFailed(ValidationFailed):
    """The source could not be read or is not in a format we know."""


# One answer for every way an MCP URL can fail (refused by the outbound policy, no DNS, closed
# port, timeout, a web server that is not MCP): distinct answers would make the import a port
# scanner for the server's network. The real reason travels in ``SourceUnavailable.reason``
# to the log and the audit row.
UNAVAILABLE = "it is not allowed, cannot be reached, did not answer in time or does not speak MCP"


class SourceUnavailable(ImportFailed):
    """An MCP server URL gave no tool list; ``reason``/``kind`` say why, the message never does."""

    def __init__(self, source: str, *, kind: str, reason: str, outbound: OutboundError | None = None) -> None:
        from ftops.common.outbound import redact_url

        message = f"could not list the tools of the MCP server {redact_url(source)!r}: {UNAVAILABLE}"
        super().__init__(message, fields={"url": [UNAVAILABLE]})
        self.kind = kind
        self.reason = reason
        self.outbound = outbound


@dataclass(frozen=True)
class ServiceDef:
    name: str
    display_name: str = ""
    description: str = ""
    version: str = ""
    vocabulary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolDef:
    service: str
    name: str
    description: str
    parameters: dict[str, Any]
    inferred: bool = False
    vocabulary: dict[str, Any] = field(default_factory=dict)


@dataclass
class Parsed:
    fmt: str
    services: list[ServiceDef]
    tools: list[ToolDef]
    documents: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # tool names given twice (first one kept)
    notes: list[str] = field(default_factory=list)  # what the user should know, e.g. a guessed service name


# ---------------------------------------------------------------- detection

def detect_format(source: str) -> str:
    """The format of ``source``: a URL is MCP over HTTP, a file is read, anything else is a command."""
    if source.startswith(("http://", "https://")):
        return "mcp-http"
    path = Path(source)
    if path.is_file():
        return detect_content_format(load_file(path))
    return "mcp"


def detect_content_format(data: Any) -> str:
    items = data if isinstance(data, list) else [data]
    if isinstance(data, dict) and isinstance(data.get("tools"), list):
        return "openai-tools"
    dicts = [i for i in items if isinstance(i, dict)]
    if not dicts:
        raise ImportFailed("the content holds no JSON objects", fields={"source": [
            "give per-tool training documents, an OpenAI tools list or BFCL function docs"]})
    first = dicts[0]
    if "training_examples" in first or "edge_cases" in first or ("tool" in first and "service" in first):
        return "tool-docs"
    if "function" in first and isinstance(first["function"], list):
        return "bfcl"  # a BFCL question line: {"id", "question", "function": [docs]}
    if first.get("type") == "function" or "inputSchema" in first:
        return "openai-tools"
    if "name" in first and "parameters" in first:
        kind = (first.get("parameters") or {}).get("type")
        return "bfcl" if kind == "dict" else "openai-tools"
    raise ImportFailed("could not tell the format of the content", fields={"format": [
        f"pass the format explicitly; one of {list(FORMATS)}"]})


def load_file(path: Path) -> Any:
    """JSON, or JSON lines (BFCL ships one question per line)."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImportFailed(f"cannot read {path}: {exc.strerror}", fields={"source": [str(exc)]}) from exc
    if size > MAX_FILE_BYTES:
        raise ImportFailed(f"{path} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB",
                           fields={"source": ["split the file"]})
    text = path.read_text(encoding="utf-8")
    return parse_json_or_lines(text, label=str(path))


def parse_json_or_lines(text: str, *, label: str = "content") -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as whole_error:
        lines = [line for line in text.splitlines() if line.strip()]
        out = []
        for number, line in enumerate(lines, start=1):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                if len(lines) == 1 or number == 1:
                    raise ImportFailed(f"{label} is not JSON: {whole_error.msg} at line {whole_error.lineno}",
                                       fields={"source": [f"line {whole_error.lineno}: {whole_error.msg}"]},
                                       ) from whole_error
                raise ImportFailed(f"{label} line {number} is not JSON",
                                   fields={"source": [f"line {number} is not a JSON object"]}) from None
        return out


# ---------------------------------------------------------------- text the database cannot store

MAX_DEPTH = 64
NUL_TEXT = "holds a NUL (\\u0000) character, which the database cannot store; remove it"
SURROGATE_TEXT = ("holds a lone UTF-16 surrogate (such as \\ud800), which is not valid Unicode and cannot be "
                  "stored; send well-formed text")


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return NUL_TEXT
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return SURROGATE_TEXT
    return None


def reject_unstorable_text(value: Any, *, where: str) -> None:
    """ImportFailed naming the first string (or key) in ``value`` with a NUL or a lone surrogate.

    PostgreSQL refuses both (and SQLite stores them only to fail later when the text is
    encoded), so without this a single bad character in an uploaded document was a 500.
    The walk is iterative and bounded in depth: later recursive steps stay far from Python's
    recursion limit.
    """
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ImportFailed(f"{path} nests objects and arrays too deeply", fields={path: [
                f"nests objects and arrays more than {MAX_DEPTH} levels deep; send a flatter value"]})
        if isinstance(item, str):
            problem = _text_problem(item)
            if problem:
                raise ImportFailed(f"{path} {problem}", fields={path: [problem]})
        elif isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                key_text = str(key)
                problem = _text_problem(key_text)
                if problem:
                    raise ImportFailed(f"a key in {path} {problem}", fields={path: [f"a key {problem}"]})
                stack.append((child, f"{path}.{key_text}", depth + 1))
        elif isinstance(item, list | tuple):
            stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in reversed(list(enumerate(item))))


# ---------------------------------------------------------------- names

def service_slug(name: str, *, field_name: str = "service") -> str:
    slug = slugify(name or "")[:100]
    if not slug:
        raise ImportFailed("a service name is needed", fields={field_name: [
            f"{name!r} gives no usable service name; pass --service / 'service' (letters, digits, dashes)"]})
    return slug


def _tool_name(raw: Any, where: str) -> str:
    name = str(raw or "").strip()
    if not name or len(name) > 200:
        raise ImportFailed("a tool has no usable name", fields={where: ["each tool needs a name of 1-200 characters"]})
    return name


# ---------------------------------------------------------------- per-tool training documents

def parse_tool_documents(data: Any, *, service: str | None = None) -> Parsed:
    docs = data if isinstance(data, list) else [data]
    if not docs or not all(isinstance(d, dict) for d in docs):
        raise ImportFailed("per-tool documents must be an object or a list of objects",
                           fields={"documents": ["give {service, tool, training_examples, ...} objects"]})
    services: dict[str, ServiceDef] = {}
    tools: dict[tuple[str, str], ToolDef] = {}
    normalized: list[dict[str, Any]] = []
    duplicates: list[str] = []
    errors: dict[str, list[str]] = {}
    for index, doc in enumerate(docs):
        where = f"documents[{index}]"
        svc_raw = service or doc.get("service")
        if not svc_raw:
            errors[f"{where}.service"] = ["name the service the tool belongs to (or pass --service)"]
            continue
        if not doc.get("tool"):
            errors[f"{where}.tool"] = ["name the tool this document is about"]
            continue
        for key in ("training_examples", "edge_cases"):
            if key in doc and not isinstance(doc[key], list):
                errors[f"{where}.{key}"] = [f"{key} is a list"]
        params = doc.get("parameters")
        if params is not None and not (isinstance(params, dict) and (params.get("type") in ("object", "dict", None))):
            errors[f"{where}.parameters"] = ["parameters is a JSON Schema object of type 'object'"]
        if any(k.startswith(where) for k in errors):
            continue
        svc = service_slug(str(svc_raw))
        name = _tool_name(doc["tool"], f"{where}.tool")
        vocabulary = doc.get("domain_vocabulary") if isinstance(doc.get("domain_vocabulary"), dict) else {}
        previous = services.get(svc)
        services[svc] = ServiceDef(
            svc,
            display_name=str(doc.get("service_display_name") or (previous.display_name if previous else "")),
            description=str(doc.get("service_description") or (previous.description if previous else "")),
            version=str(doc.get("version") or (previous.version if previous else "")),
            vocabulary={**(previous.vocabulary if previous else {}), **vocabulary},
        )
        if (svc, name) in tools:
            duplicates.append(name)
        else:
            if isinstance(params, dict):
                tools[(svc, name)] = ToolDef(svc, name, str(doc.get("description") or ""), normalize_schema(params),
                                             inferred=False, vocabulary=vocabulary)
            else:
                tools[(svc, name)] = ToolDef(svc, name, str(doc.get("description") or ""),
                                             infer_tool_schema(docs, name), inferred=True, vocabulary=vocabulary)
        normalized.append({**doc, "service": svc, "tool": name})
    if errors:
        raise ImportFailed("some documents are invalid; see 'fields'", fields=errors)
    # Tools that examples call but no document describes are resolved against the catalog
    # (``resolve_tool_references``) before anything is written; only names found nowhere
    # get a schema inferred from their calls.
    return Parsed("tool-docs", list(services.values()), list(tools.values()), normalized, duplicates)


def _examples(doc: dict[str, Any]) -> list[dict[str, Any]]:
    items = [*(doc.get("training_examples") or []), *(doc.get("edge_cases") or [])]
    return [i for i in items if isinstance(i, dict)]


# ---------------------------------------------------------------- tool names across services

QUALIFY_HINT = "name it as service.tool"


@dataclass(frozen=True)
class _Scope:
    """Who has which tool: the documents being imported first, then the catalog."""

    file_tools: dict[str, set[str]]  # tool name -> services whose documents in the file define it
    catalog_tools: Mapping[str, set[str]]  # tool name -> services that have it in the catalog
    services: set[str]  # every service name known to the file or the catalog

    def owners(self, name: str) -> set[str]:
        return self.file_tools.get(name, set()) | set(self.catalog_tools.get(name, set()))


def _resolve_name(name: str, *, service: str, pinned: Mapping[str, str], scope: _Scope) -> tuple[str, str]:
    """(service, tool) that ``name`` in an example of ``service`` refers to; ImportFailed-style
    message as ``ValueError`` when it is ambiguous or names a tool its service lacks.

    ``service.tool`` is a qualified name when ``service`` is a known service and no tool is
    literally called ``name`` (BFCL-style tools such as ``math.factorial`` keep their dot).
    An unqualified name is the example's own service's tool when it has one, else the one
    service in the file, else the one service in the catalog that has it. A name found
    nowhere stays in the example's own service, where the import infers its schema.
    """
    if name in pinned:  # resolved before (a job re-reading what the catalog recorded)
        return pinned[name], name
    prefix, dot, rest = name.partition(".")
    if dot and rest and prefix in scope.services and not scope.owners(name):
        if prefix in scope.owners(rest):
            return prefix, rest
        raise ValueError(f"{name!r} names service {prefix!r}, which has no tool {rest!r}")
    owners = scope.owners(name)
    if service in owners:
        return service, name
    for candidates in (scope.file_tools.get(name, set()), set(scope.catalog_tools.get(name, set()))):
        if len(candidates) == 1:
            return next(iter(candidates)), name
        if len(candidates) > 1:
            options = sorted(candidates)
            raise ValueError(f"tool {name!r} exists in several services ({', '.join(options)}); {QUALIFY_HINT}: "
                             + " or ".join(f"{svc}.{name}" for svc in options))
    return service, name


def _resolve_example(example: dict[str, Any], *, service: str, scope: _Scope) -> tuple[dict[str, Any], set[str]]:
    """The example with every called tool named as its service knows it, plus the names of its
    own service's tools that no document in the file defines (raises ValueError with what is wrong)."""
    raw_pins = example.get("tool_services")
    pinned: dict[str, str] = ({str(k): str(v) for k, v in raw_pins.items()} if isinstance(raw_pins, dict) else {})
    chosen: dict[str, str] = {}  # bare name -> service, one per name within an example
    unknown: set[str] = set()

    def resolve(raw: Any) -> Any:
        if not isinstance(raw, str) or not raw:
            return raw
        svc, bare = _resolve_name(raw, service=service, pinned=pinned, scope=scope)
        if chosen.setdefault(bare, svc) != svc:
            # The model sees bare names; two tools called alike in one example cannot be told apart.
            raise ValueError(f"the example calls two tools named {bare!r} ({chosen[bare]}.{bare} and {svc}.{bare}); "
                             "a model offered both could not tell them apart")
        if svc == service and service not in scope.file_tools.get(bare, set()):
            unknown.add(bare)
        return bare

    out = dict(example)
    if "correct_tool" in out:
        out["correct_tool"] = resolve(out["correct_tool"])
    for key in ("correct_calls", "correct_sequence"):
        if isinstance(out.get(key), list):
            out[key] = [{**item, **{k: resolve(item[k]) for k in ("tool", "name") if k in item}}
                        if isinstance(item, dict) else item for item in out[key]]
    behavior = out.get("correct_behavior")
    if isinstance(behavior, dict) and behavior.get("action") == "call" and "tool" in behavior:
        out["correct_behavior"] = {**behavior, "tool": resolve(behavior["tool"])}
    elsewhere = {bare: svc for bare, svc in sorted(chosen.items()) if svc != service}
    if elsewhere:
        out["tool_services"] = elsewhere
    else:
        out.pop("tool_services", None)
    return out, unknown


def resolve_tool_references(parsed: Parsed, *, catalog_tools: Mapping[str, set[str]],
                            catalog_services: set[str]) -> Parsed:
    """Point every tool an example calls at the service that has it; never copy a tool.

    A sequence may look up a customer in one service and charge in another. Each name is
    looked up in the file first, then in the catalog (``catalog_tools``: tool name ->
    services). The documents come back with bare names and, per example, ``tool_services``
    for the tools of other services; names found nowhere become tools of the example's own
    service with a schema inferred from their calls (as a document without ``parameters``).
    An ambiguous or wrong name fails the whole import with every bad example in ``fields``.
    """
    if parsed.fmt != "tool-docs":
        return parsed
    file_tools: dict[str, set[str]] = {}
    for doc in parsed.documents:
        file_tools.setdefault(doc["tool"], set()).add(doc["service"])
    scope = _Scope(file_tools=file_tools, catalog_tools=catalog_tools,
                   services={s.name for s in parsed.services} | set(catalog_services))
    errors: dict[str, list[str]] = {}
    unknown: dict[str, set[str]] = {}
    documents: list[dict[str, Any]] = []
    for d_index, doc in enumerate(parsed.documents):
        doc = dict(doc)
        for key in ("training_examples", "edge_cases"):
            if not isinstance(doc.get(key), list):
                continue
            items = []
            for e_index, example in enumerate(doc[key]):
                if isinstance(example, dict):
                    try:
                        example, names = _resolve_example(example, service=doc["service"], scope=scope)
                    except ValueError as exc:
                        errors[f"documents[{d_index}].{key}[{e_index}]"] = [str(exc)]
                    else:
                        unknown.setdefault(doc["service"], set()).update(names)
                items.append(example)
            doc[key] = items
        documents.append(doc)
    if errors:
        raise ImportFailed(f"{len(errors)} example(s) call tools that cannot be resolved; nothing was imported "
                           f"(see 'fields'; {QUALIFY_HINT})", fields=errors)
    tools = list(parsed.tools)
    defined = {(t.service, t.name) for t in tools}
    notes = list(parsed.notes)
    for svc in sorted(unknown):
        own_docs = [d for d in documents if d["service"] == svc]
        for name in sorted(unknown[svc] - {n for s, n in defined if s == svc}):
            # Re-inferred on every import, as for a document without parameters: a schema the
            # catalog has from elsewhere (published) is never replaced by the guess (``tool_upsert``).
            tools.append(ToolDef(svc, name, "", infer_tool_schema(own_docs, name), inferred=True))
            if svc in catalog_tools.get(name, set()):
                continue
            notes.append(f"{svc}.{name} is called by examples but defined neither in this file nor in the catalog; "
                         "its schema was inferred from those calls (qualify the name as service.tool if it "
                         "belongs to another service)")
    references = sorted({f"{doc['service']} -> {svc}.{bare}" for doc in documents for example in _examples(doc)
                         for bare, svc in (example.get("tool_services") or {}).items()})
    if references:
        notes.append("examples call tools of other services: " + ", ".join(references))
    return Parsed(parsed.fmt, parsed.services, tools, documents, parsed.duplicates, notes)


def asked_fields(docs: list[dict[str, Any]], tool: str) -> list[str]:
    """The parameters that the ask_for_details edge cases of ``tool``'s documents ask for."""
    out: dict[str, None] = {}
    for doc in docs:
        if doc.get("tool") != tool:
            continue  # an edge case is about its document's tool
        for example in _examples(doc):
            behavior = example.get("correct_behavior")
            if isinstance(behavior, dict) and behavior.get("action") == "ask_for_details":
                fields = behavior.get("required_fields")
                out.update(dict.fromkeys(f for f in fields or [] if isinstance(f, str) and f))
    return list(out)


def infer_tool_schema(docs: list[dict[str, Any]], tool: str) -> dict[str, Any]:
    """A schema for ``tool`` from its examples' calls and its ask_for_details edge cases.

    A field an edge case asks for is a parameter of the tool even when no example passes it,
    and it is required unless an example call leaves it out: the seed's own document asks
    for ``customer_id`` while its first example charges an invoice without one. Such a field
    stays optional here, and ``lenient_ask_schema`` lets the edge case name it anyway.
    """
    argument_sets = tool_argument_sets(docs, tool)
    schema = infer_schema(argument_sets)
    asked = asked_fields(docs, tool)
    if not asked:
        return schema
    properties = {**{name: {} for name in asked}, **schema["properties"]}
    required = set(schema["required"]) | {f for f in asked if all(f in args for args in argument_sets)}
    return {**schema, "properties": dict(sorted(properties.items())), "required": sorted(required)}


def lenient_ask_schema(parameters: dict[str, Any], fields: Any) -> dict[str, Any]:
    """``parameters`` with the known parameters in ``fields`` added to ``required``.

    Used only to validate an ask_for_details example against an *inferred* schema: the
    inference cannot tell "required" from "absent in one example", so a field the document
    itself says must be asked for is taken at its word when the tool has that parameter.
    """
    properties = parameters.get("properties") or {}
    required = list(parameters.get("required") or [])
    extra = [f for f in fields or [] if isinstance(f, str) and f in properties and f not in required]
    return {**parameters, "required": required + extra} if extra else parameters


def tool_argument_sets(docs: list[dict[str, Any]], tool: str) -> list[dict[str, Any]]:
    """Every argument object the documents' examples pass to ``tool``."""
    out: list[dict[str, Any]] = []
    for doc in docs:
        for example in _examples(doc):
            if example.get("correct_tool") == tool and isinstance(example.get("correct_parameters"), dict):
                out.append(example["correct_parameters"])
            for call in example.get("correct_calls") or []:
                if isinstance(call, dict) and call.get("tool") == tool and isinstance(call.get("parameters"), dict):
                    out.append(call["parameters"])
            for step in example.get("correct_sequence") or []:
                if isinstance(step, dict) and step.get("tool") == tool and isinstance(step.get("parameters"), dict):
                    out.append(step["parameters"])
    return out


# ---------------------------------------------------------------- OpenAI tools and BFCL docs

def parse_function_list(data: Any, *, fmt: str, service: str) -> Parsed:
    """OpenAI ``tools`` (wrapped or bare functions, or MCP ``tools/list`` JSON) and BFCL docs."""
    if isinstance(data, dict) and isinstance(data.get("tools"), list):
        data = data["tools"]
    items = data if isinstance(data, list) else [data]
    functions: list[tuple[str, dict[str, Any]]] = []
    for index, item in enumerate(items):
        where = f"tools[{index}]"
        if not isinstance(item, dict):
            raise ImportFailed("each tool is a JSON object", fields={where: ["expected an object"]})
        if isinstance(item.get("function"), list):  # BFCL question line
            functions += [(f"{where}.function[{j}]", f) for j, f in enumerate(item["function"]) if isinstance(f, dict)]
        elif isinstance(item.get("function"), dict):
            functions.append((f"{where}.function", item["function"]))
        else:
            functions.append((where, item))
    svc = service_slug(service)
    tools: dict[str, ToolDef] = {}
    duplicates: list[str] = []
    for where, fn in functions:
        name = _tool_name(fn.get("name"), f"{where}.name")
        params = fn.get("parameters", fn.get("inputSchema", fn.get("input_schema")))
        if params is not None and not isinstance(params, dict):
            raise ImportFailed("parameters must be a JSON Schema object", fields={f"{where}.parameters": [
                "give a JSON Schema object (type object, or BFCL's dict)"]})
        if name in tools:
            duplicates.append(name)
            continue
        tools[name] = ToolDef(svc, name, str(fn.get("description") or ""), normalize_schema(params))
    if not tools:
        raise ImportFailed("no tools found", fields={"tools": ["the list holds no function definitions"]})
    return Parsed(fmt, [ServiceDef(svc)], list(tools.values()), [], duplicates)


# ---------------------------------------------------------------- MCP

def parse_mcp(source: str, *, fmt: str, service: str | None = None, timeout: float = MCP_TIMEOUT_S) -> Parsed:
    """``tools/list`` of a live MCP server (all pages), through the official SDK's client.

    Over HTTP the SDK talks through the guarded outbound client (``ftops.common.outbound``):
    the URL's addresses are checked at every connect, and the whole session gets the outbound
    time limit (``FTOPS_OUTBOUND_TIMEOUT_S``) rather than ``timeout``.
    """
    from ftops.common.outbound import run_sync

    if fmt == "mcp-http":
        server_name, server_version, raw_tools = run_sync(_mcp_http_list_tools, source)
    else:
        server_name, server_version, raw_tools = run_sync(_mcp_stdio_list_tools, source, timeout)
    # Names and descriptions come from a server we do not control; the database cannot store
    # a NUL or a lone surrogate, so they are refused here with the tool they are in.
    reject_unstorable_text(raw_tools, where="tools")
    reject_unstorable_text([server_name, server_version], where="server_info")
    svc = service_slug(service or server_name or "", field_name="service")
    tools: dict[str, ToolDef] = {}
    duplicates: list[str] = []
    for index, tool in enumerate(raw_tools):
        name = _tool_name(tool.get("name"), f"tools[{index}].name")
        if name in tools:
            duplicates.append(name)
            continue
        tools[name] = ToolDef(svc, name, str(tool.get("description") or ""), normalize_schema(tool.get("input_schema")))
    return Parsed(fmt, [ServiceDef(svc, display_name=server_name or "", version=server_version or "")],
                  list(tools.values()), [], duplicates)


async def _list_all_tools(client: Any) -> tuple[str, str, list[dict[str, Any]]]:
    info = client.server_info
    tools: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(MCP_MAX_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools += [{"name": t.name, "description": t.description, "input_schema": t.input_schema} for t in page.tools]
        cursor = page.next_cursor
        if not cursor:
            break
    return (info.name if info else ""), (info.version if info else ""), tools


async def _mcp_http_list_tools(source: str) -> tuple[str, str, list[dict[str, Any]]]:
    import anyio
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    from ftops.common import outbound

    if not source.startswith(("http://", "https://")):
        raise ImportFailed("an MCP HTTP source is a URL", fields={"source": ["e.g. http://host:8000/mcp"]})
    limits = outbound.limits_from_settings()
    http_client = outbound.guarded_async_client(timeout_s=limits.timeout_s, max_bytes=limits.max_bytes)
    try:
        with anyio.fail_after(limits.timeout_s):
            # Checked here for a clean refusal; the transport checks again at every connect.
            await outbound.check_url_async(source)
            async with http_client, Client(streamable_http_client(source, http_client=http_client),
                                           read_timeout_seconds=limits.timeout_s) as client:
                return await _list_all_tools(client)
    except (Exception, BaseExceptionGroup) as exc:
        inner = _innermost(exc)
        # The SDK rewraps transport errors in its own; the transport kept the guard's verdict.
        guard = next(iter(outbound.transport_errors(http_client)), None)
        found = inner if isinstance(inner, OutboundError) else guard
        if found is not None:
            raise SourceUnavailable(source, kind=found.kind, reason=found.reason, outbound=found) from None
        kind = "timeout" if isinstance(inner, TimeoutError) else "unreachable"
        reason = _describe(exc) if kind == "unreachable" else f"no tool list within {limits.timeout_s:g} s"
        raise SourceUnavailable(source, kind=kind, reason=reason) from None


async def _mcp_stdio_list_tools(source: str, timeout: float) -> tuple[str, str, list[dict[str, Any]]]:
    """A local command (``manage.py catalog_import`` only: the API refuses commands)."""
    import anyio
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters, stdio_client

    errlog = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")  # noqa: SIM115 - read on failure
    try:
        try:
            parts = shlex.split(source)
        except ValueError as exc:
            raise ImportFailed(f"cannot parse the command: {exc}", fields={"source": [str(exc)]}) from exc
        if not parts:
            raise ImportFailed("empty MCP command", fields={"source": ["give the command that starts the server"]})
        # Server logs go to a scratch file: shown when the server fails, silent otherwise.
        target = stdio_client(StdioServerParameters(command=parts[0], args=parts[1:]), errlog=errlog)
        try:
            with anyio.fail_after(timeout):
                async with Client(target, read_timeout_seconds=timeout) as client:
                    return await _list_all_tools(client)
        except (Exception, BaseExceptionGroup) as exc:
            errlog.seek(0)
            tail = errlog.read()[-500:].strip()
            reason = _describe(exc) + (f"; server said: {tail}" if tail else "")
            raise ImportFailed(f"could not list the tools of the MCP server {source!r}: {reason}",
                               fields={"source": [reason]}) from None
    finally:
        errlog.close()


def _innermost(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _describe(exc: BaseException) -> str:
    """The innermost message of an exception (task groups wrap the real one)."""
    exc = _innermost(exc)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


# ---------------------------------------------------------------- entry point

def parse_source(*, source: str, fmt: str | None = None, service: str | None = None, content: Any = None) -> Parsed:
    """Read ``source`` (or inline ``content``) into tool definitions."""
    if fmt is not None and fmt not in FORMATS:
        raise ImportFailed(f"unknown format {fmt!r}", fields={"format": [f"choose one of {list(FORMATS)}"]})
    reject_unstorable_text(source, where="source")
    if service is not None:
        reject_unstorable_text(service, where="service")
    if content is not None:
        reject_unstorable_text(content, where="content")
    if content is None:
        fmt = fmt or detect_format(source)
        if fmt == "mcp" and source.strip().startswith(("http://", "https://")):
            # A URL cannot be run as a stdio command; it is the streamable-HTTP transport.
            fmt = "mcp-http"
        if fmt in ("mcp", "mcp-http"):
            return parse_mcp(source.strip(), fmt=fmt, service=service)
        path = Path(source)
        if not path.is_file():
            raise ImportFailed(f"no such file: {source}", fields={"source": ["give an existing file path"]})
        content = load_file(path)
        reject_unstorable_text(content, where=path.name)
        default_service = path.stem
    else:
        fmt = fmt or detect_content_format(content)
        if fmt in ("mcp", "mcp-http"):
            raise ImportFailed("inline content cannot be an MCP server", fields={"format": [
                "use a URL for MCP over HTTP, or one of tool-docs, openai-tools, bfcl for content"]})
        default_service = ""
    if fmt == "tool-docs":
        return parse_tool_documents(content, service=service)
    if fmt == "bfcl":
        return parse_function_list(content, fmt=fmt, service=service or "bfcl")
    if not (service or default_service):
        raise ImportFailed("an OpenAI tools list needs a service", fields={"service": [
            "name the service these tools belong to"]})
    parsed = parse_function_list(content, fmt=fmt, service=service or default_service)
    if not service:
        # An OpenAI tools list names no service; the file name is a guess the user should see.
        parsed.notes.append(f"service {parsed.services[0].name!r} was taken from the file name; "
                            "pass --service NAME to choose it")
    return parsed
