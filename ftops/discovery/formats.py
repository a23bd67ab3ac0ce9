"""The three wire formats of ``/mcp/training-dataset`` (no Django).

``openai`` and ``hf`` are the fine-tuning lines of ``ftops.datasets.exports``; ``anthropic_messages``
is the Messages API shape: ``tool_use`` blocks with ``input`` objects, tool results as
``tool_result`` blocks in a user turn, tools as ``{name, description, input_schema}``.
"""

from __future__ import annotations

import json
from typing import Any

from ftops.core.records import Record
from ftops.datasets.exports import hf_line, openai_line


def anthropic_line(record: Record) -> dict[str, Any]:
    hf = hf_line(record)
    system = "\n\n".join(str(m.get("content") or "") for m in hf["messages"] if m["role"] == "system")
    messages: list[dict[str, Any]] = []
    pending_ids: list[str] = []
    counter = 0
    for message in hf["messages"]:
        role = message["role"]
        if role == "system":
            continue
        if role == "assistant" and message.get("tool_calls"):
            blocks: list[dict[str, Any]] = []
            if message.get("content"):
                blocks.append({"type": "text", "text": message["content"]})
            pending_ids = []
            for call in message["tool_calls"]:
                call_id = f"toolu_{counter}"
                counter += 1
                pending_ids.append(call_id)
                blocks.append({"type": "tool_use", "id": call_id, "name": call["function"]["name"],
                               "input": call["function"]["arguments"]})
            messages.append({"role": "assistant", "content": blocks})
        elif role == "tool":
            use_id = pending_ids.pop(0) if pending_ids else f"toolu_{counter}"
            messages.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": use_id, "content": str(message.get("content") or "")}]})
        else:
            messages.append({"role": role, "content": str(message.get("content") or "")})
    line: dict[str, Any] = {
        "messages": messages,
        "tools": [{"name": t["function"]["name"], "description": t["function"].get("description", ""),
                   "input_schema": t["function"].get("parameters") or {"type": "object", "properties": {}}}
                  for t in hf["tools"]],
    }
    if system:
        line["system"] = system
    return line


RENDERERS = {"openai": openai_line, "hf": hf_line, "anthropic_messages": anthropic_line}


def render(record: Record, fmt: str) -> dict[str, Any]:
    try:
        return RENDERERS[fmt](record)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # A record that cannot be rendered still travels natively; say why it has no line.
        return {"error": f"cannot be rendered as {fmt}: {type(exc).__name__}: {json.dumps(str(exc))}"}
