"""ftops' model server over HTTP: the official ``openai`` client, and httpx for vLLM's adapter endpoints."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from ftops.core.ml.chat import normalize_tool
from tests.modelserver.conftest import KEY, Built, Running, weather_record

pytestmark = pytest.mark.ml


def post(running: Running, path: str, body: dict[str, Any], *, key: str = KEY) -> httpx2.Response:
    return httpx2.post(running.url + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def load(running: Running, name: str, path: Path | str) -> httpx2.Response:
    return post(running, "/load_lora_adapter", {"lora_name": name, "lora_path": str(path)})


def said(message: Any) -> tuple[str | None, list[tuple[str, str]]]:
    """What a message says (its call ids are fresh per answer)."""
    return message.content, [(c.function.name, c.function.arguments) for c in message.tool_calls or []]


def ask(client: Any, model: str, **extra: Any) -> Any:
    record = weather_record()
    return client.chat.completions.create(model=model, messages=record.messages,
                                          tools=[normalize_tool(t) for t in record.tools], max_tokens=40, **extra)


def test_models_lists_the_base_and_each_loaded_adapter(model_server: Running, models: Built) -> None:
    client = model_server.client()
    assert [m.id for m in client.models.list()] == ["micro-base"]
    answer = load(model_server, "acme-1.0.0", models.weather)
    assert (answer.status_code, answer.text) == (200, "Success: LoRA adapter 'acme-1.0.0' added successfully.")
    listed = {m.id: m for m in client.models.list()}
    assert sorted(listed) == ["acme-1.0.0", "micro-base"]
    assert listed["acme-1.0.0"].model_extra == {"root": str(models.weather.resolve()), "parent": "micro-base"}


def test_chat_completion_with_tools_returns_openai_tool_calls(model_server: Running, models: Built) -> None:
    assert load(model_server, "weather", models.weather).status_code == 200
    completion = ask(model_server.client(), "weather")
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert (call.type, call.function.name, json.loads(call.function.arguments)) == (
        "function", "get_weather", {"city": "Paris"})
    assert call.id.startswith("call_")
    assert completion.model == "weather"
    assert completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    # Without tools (or with tool_choice "none") the same text is prose, never a call.
    plain = ask(model_server.client(), "weather", tool_choice="none")
    assert plain.choices[0].message.tool_calls is None


def test_streaming_sends_the_same_answer_as_chunks(model_server: Running, models: Built) -> None:
    assert load(model_server, "weather", models.weather).status_code == 200
    client = model_server.client()
    whole = ask(client, "weather")
    chunks = list(ask(client, "weather", stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    calls = [c for chunk in chunks for choice in chunk.choices for c in choice.delta.tool_calls or []]
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        (t.function.name, json.loads(t.function.arguments)) for t in whole.choices[0].message.tool_calls]
    assert [choice.finish_reason for chunk in chunks for choice in chunk.choices if choice.finish_reason] == [
        "tool_calls"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == whole.usage.total_tokens
    # The openai client's stream helper puts the answer back together.
    with client.chat.completions.stream(model="weather", messages=weather_record().messages,
                                        tools=[normalize_tool(t) for t in weather_record().tools],
                                        max_tokens=40) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.tool_calls[0].function.name == "get_weather"


def test_two_adapters_answer_differently_in_one_batch(model_server: Running, models: Built) -> None:
    assert load(model_server, "weather", models.weather).status_code == 200
    assert load(model_server, "rooms", models.rooms).status_code == 200
    client = model_server.client()
    alone = {model: said(ask(client, model).choices[0].message) for model in ("weather", "rooms", "micro-base")}

    def raw(model: str) -> Any:
        record = weather_record()
        return client.chat.completions.with_raw_response.create(
            model=model, messages=record.messages, tools=[normalize_tool(t) for t in record.tools], max_tokens=40)

    batches_before = model_server.app.batcher.batches
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(raw, ["weather", "rooms", "micro-base"]))
    assert [a.headers["x-batch-size"] for a in answers] == ["3", "3", "3"]
    assert model_server.app.batcher.batches == batches_before + 1
    together = {a.parse().model: said(a.parse().choices[0].message) for a in answers}
    # Each row of the mixed batch answers as its adapter does alone, and the adapters differ.
    assert together == alone
    assert together["weather"] == (None, [("get_weather", '{"city":"Paris"}')])
    assert together["rooms"] != together["weather"]
    assert together["micro-base"] == (None, [("get_weather", '{"town":"Paris"}')])


def test_load_and_unload_follow_vllms_answers(model_server: Running, models: Built) -> None:
    client = model_server.client()
    assert load(model_server, "weather", "adapters/weather").status_code == 200  # relative to the root
    again = load(model_server, "weather", models.weather)  # the same folder again: nothing to do
    assert again.status_code == 200
    other = load(model_server, "weather", models.rooms)
    assert other.status_code == 400
    assert other.json()["error"]["message"] == "The lora adapter 'weather' has already been loaded."
    assert ask(client, "weather").choices[0].message.tool_calls is not None
    gone = post(model_server, "/unload_lora_adapter", {"lora_name": "weather"})
    assert (gone.status_code, gone.text) == (200, "Success: LoRA adapter 'weather' removed successfully.")
    assert [m.id for m in client.models.list()] == ["micro-base"]
    with pytest.raises(openai.NotFoundError):
        ask(client, "weather")
    missing = post(model_server, "/unload_lora_adapter", {"lora_name": "weather"})
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "The lora adapter 'weather' cannot be found."
    # The base still answers after its last adapter left, and an adapter can come back.
    assert said(ask(client, "micro-base").choices[0].message) == (None, [("get_weather", '{"town":"Paris"}')])
    assert load(model_server, "weather", models.weather).status_code == 200
    assert ask(client, "weather").choices[0].message.tool_calls[0].function.name == "get_weather"


@pytest.mark.parametrize("path", ["../base", "adapters/../../base", "/etc", "/", "adapters", "adapters/nope", "",
                                  "adapters/weather\x00", "link-out", "link-in/../weather"])
def test_a_lora_path_outside_the_adapters_root_is_refused(model_server: Running, models: Built, path: str) -> None:
    link = models.root / "link-out"
    if not link.is_symlink():
        os.symlink(models.base.parent / "base", link)  # a link inside the root that points out of it
    inward = models.root / "link-in"
    if not inward.is_symlink():
        os.symlink(models.root / "adapters", inward)
    answer = load(model_server, "sneaky", path)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] == "lora_path"
    assert error["message"].startswith("lora_path must name a LoRA adapter folder")
    assert [m.id for m in model_server.client().models.list()] == ["micro-base"]


def test_unknown_model_bad_requests_and_keys(model_server: Running) -> None:
    client = model_server.client()
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.body == {"message": "The model `nope` does not exist.", "type": "invalid_request_error",
                                  "param": "model", "code": "model_not_found"}
    with pytest.raises(openai.AuthenticationError):
        model_server.client(api_key="wrong").models.list()
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="micro-base", messages=[])
    assert bad.value.body["param"] == "messages"
    with pytest.raises(openai.BadRequestError) as too_many:
        client.chat.completions.create(model="micro-base", messages=[{"role": "user", "content": "hi"}], n=2)
    assert too_many.value.body["code"] == "invalid_n"
    assert post(model_server, "/load_lora_adapter", {"lora_name": "x"}, key="wrong").status_code == 401
    unnamed = post(model_server, "/load_lora_adapter", {"lora_path": "adapters/weather"})
    assert (unnamed.status_code, unnamed.json()["error"]["param"]) == (400, "lora_name")
    not_json = httpx2.post(model_server.url + "/load_lora_adapter", content=b"{", timeout=10,
                           headers={"Authorization": f"Bearer {KEY}"})
    assert (not_json.status_code, not_json.json()["error"]["code"]) == (400, "invalid_json")
    assert httpx2.get(model_server.url + "/load_lora_adapter", timeout=10,
                      headers={"Authorization": f"Bearer {KEY}"}).status_code == 405
