"""Schema-constrained decoding on the model server: ``ftops_constrained`` per request, or the server's default.

The test base answers the weather request with ``{"town": "Paris"}``, which the weather schema
refuses (``city`` is required, ``town`` unknown); held to the schema, the same model's call is valid.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jsonschema
import openai
import pytest

from ftops.core.ml.chat import normalize_tool
from ftops.modelserver.server import build_server
from tests.modelserver.conftest import KEY, Built, Running, start_model_server, weather_record

pytestmark = pytest.mark.ml


def weather_schema() -> dict[str, Any]:
    tool = next(normalize_tool(t) for t in weather_record().tools
                if normalize_tool(t)["function"]["name"] == "get_weather")
    return dict(tool["function"]["parameters"])


def schema_valid(message: Any) -> bool:
    """The message holds calls, and every one is get_weather with arguments its schema accepts."""
    if not message.tool_calls:
        return False
    for call in message.tool_calls:
        if call.function.name != "get_weather":
            return False
        try:
            jsonschema.validate(json.loads(call.function.arguments), weather_schema())
        except (jsonschema.ValidationError, ValueError):
            return False
    return True


def ask(client: Any, **extra: Any) -> Any:
    record = weather_record()
    return client.chat.completions.with_raw_response.create(
        model="micro-base", messages=record.messages, tools=[normalize_tool(t) for t in record.tools], max_tokens=64,
        **extra)


def test_a_constrained_request_gets_schema_valid_calls_where_a_free_one_does_not(model_server: Running) -> None:
    client = model_server.client()
    free = ask(client).parse().choices[0].message
    assert [(c.function.name, json.loads(c.function.arguments)) for c in free.tool_calls] == [
        ("get_weather", {"town": "Paris"})]
    assert not schema_valid(free)
    held = ask(client, extra_body={"ftops_constrained": True}).parse().choices[0]
    assert held.finish_reason == "tool_calls"
    assert schema_valid(held.message), held.message
    # false is the server's default (off) said out loud: the free answer again.
    again = ask(client, extra_body={"ftops_constrained": False}).parse().choices[0].message
    assert [(c.function.name, c.function.arguments) for c in again.tool_calls] == [
        (c.function.name, c.function.arguments) for c in free.tool_calls]


def test_constrained_and_free_rows_share_one_batch(model_server: Running) -> None:
    client = model_server.client()
    alone = {flag: ask(client, extra_body={"ftops_constrained": flag}).parse().choices[0].message
             for flag in (True, False)}
    batches_before = model_server.app.batcher.batches
    flags = [True, False, True, False]
    with ThreadPoolExecutor(len(flags)) as pool:
        answers = list(pool.map(lambda flag: ask(client, extra_body={"ftops_constrained": flag}), flags))
    assert [a.headers["x-batch-size"] for a in answers] == ["4"] * 4
    assert model_server.app.batcher.batches == batches_before + 1
    for flag, answer in zip(flags, answers, strict=True):
        message = answer.parse().choices[0].message
        # Each row decodes as it does alone: held rows are valid, free rows keep the base's invalid call.
        assert schema_valid(message) is flag
        assert [(c.function.name, c.function.arguments) for c in message.tool_calls] == [
            (c.function.name, c.function.arguments) for c in alone[flag].tool_calls]


def test_a_bad_flag_is_a_400(model_server: Running) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        ask(model_server.client(), extra_body={"ftops_constrained": "yes"})
    assert bad.value.body["param"] == "ftops_constrained"
    assert bad.value.body["code"] == "invalid_ftops_constrained"


@pytest.fixture
def constrained_server(models: Built) -> Iterator[Running]:
    app = build_server(base_model=str(models.base), adapters_root=models.root, api_key=KEY, base_name="micro-base",
                       batch_wait_ms=50, max_batch=8, max_new_tokens=64, threads=1, constrained=True)
    running = start_model_server(app)
    yield running
    running.stop()


def test_the_servers_default_constrains_requests_that_do_not_say(constrained_server: Running) -> None:
    client = constrained_server.client()
    assert schema_valid(ask(client).parse().choices[0].message)
    assert not schema_valid(ask(client, extra_body={"ftops_constrained": False}).parse().choices[0].message)
