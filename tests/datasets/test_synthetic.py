"""Synthetic paraphrases against a local server speaking the chat-completions protocol."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ftops.catalog.models import Service
from ftops.common.actors import Actor
from ftops.common.credentials import upstream_credential_set
from ftops.common.errors import NotFound, ValidationFailed
from ftops.datasets.config import ConfigError, CurationConfig, SyntheticConfig, load_config
from ftops.datasets.models import TrainingExample
from ftops.datasets.services import example_create
from ftops.datasets.services.synthetic import SyntheticUnavailable, examples_paraphrase, parse_paraphrases
from tests.datasets.conftest import refund_expected


class FakeChat:
    """Answers POST /v1/chat/completions with a configured message content; records requests."""

    def __init__(self) -> None:
        self.content = ""
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                if fake.status != 200:
                    payload = {"error": {"message": "overloaded", "type": "server_error"}}
                else:
                    payload = {
                        "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": body["model"],
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": fake.content}}],
                        "usage": {"prompt_tokens": 30, "completion_tokens": 40, "total_tokens": 70},
                    }
                data = json.dumps(payload).encode()
                self.send_response(fake.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"


@pytest.fixture
def chat() -> Iterator[FakeChat]:
    fake = FakeChat()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def config(base_url: str) -> CurationConfig:
    upstream_credential_set(name="paraphraser", base_url=base_url, value="sk-local", by=Actor.cli())
    return CurationConfig(synthetic=SyntheticConfig(credential="paraphraser", model="para-1"))


def test_paraphrases_are_kept_only_when_new_valid_and_faithful(payments: Service, chat: FakeChat) -> None:
    original = example_create(service=payments, user_query="Refund 20 euros on payment pay_1", behavior="call",
                              expected=refund_expected("pay_1", 20.0), source="manual", quality="high")
    chat.content = json.dumps({"paraphrases": [
        "Could you give back 20 EUR for pay_1?",  # kept
        "refund 20 euros on payment pay_1.",  # near-duplicate of the original
        "Please send the money back for that payment",  # lost the id and amount
        "I'd like pay_1 refunded, 20 euros of it",  # kept
        "Could you give back 20 EUR for pay_1 ?",  # near-duplicate of the first kept one
    ]})
    report = examples_paraphrase(example=original, n=5, config=config(chat.base_url))
    assert report.rejected == {"lost_argument_value": 1, "near_duplicate": 2}
    kept = list(TrainingExample.objects.filter(pk__in=report.kept).order_by("pk"))
    assert [k.user_query for k in kept] == ["Could you give back 20 EUR for pay_1?",
                                           "I'd like pay_1 refunded, 20 euros of it"]
    for child in kept:
        assert (child.source, child.parent_id, child.expected) == ("synthetic", original.pk, original.expected)
        assert child.provenance == {"paraphrase_of": original.pk, "model": "para-1"}
    request = chat.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer sk-local"
    assert request["body"]["model"] == "para-1"
    assert "Refund 20 euros on payment pay_1" in request["body"]["messages"][1]["content"]


def test_endpoint_errors_and_missing_config_are_clear(payments: Service, chat: FakeChat) -> None:
    original = example_create(service=payments, user_query="Refund 20 euros on payment pay_1", behavior="call",
                              expected=refund_expected(), source="manual", quality="high")
    with pytest.raises(SyntheticUnavailable, match=r"set curation\.synthetic\.credential"):
        examples_paraphrase(example=original, n=2, config=CurationConfig())
    chat.status = 500
    with pytest.raises(SyntheticUnavailable, match="the paraphrase endpoint failed"):
        examples_paraphrase(example=original, n=2, config=config(chat.base_url))
    with pytest.raises(ValidationFailed):
        examples_paraphrase(example=original, n=0, config=config(chat.base_url))
    with pytest.raises(NotFound, match="no upstream credential named 'missing'"):
        examples_paraphrase(example=original, n=2,
                            config=CurationConfig(synthetic=SyntheticConfig(credential="missing")))
    assert TrainingExample.objects.count() == 1


def test_config_file_refuses_an_endpoint_or_key_variable(tmp_path: Path) -> None:
    path = tmp_path / "ft_ops_config.yaml"
    path.write_text("curation:\n  synthetic:\n    base_url: http://169.254.169.254/\n    api_key_env: DATABASE_URL\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['api_key_env', 'base_url'\]"):
        load_config(path)


def test_parse_paraphrases_accepts_common_answer_shapes() -> None:
    assert parse_paraphrases('{"paraphrases": ["a", " b "]}') == ["a", "b"]
    assert parse_paraphrases('```json\n["x", "y"]\n```') == ["x", "y"]
    assert parse_paraphrases("1. first\n- second\n\n3) third") == ["first", "second", "third"]
