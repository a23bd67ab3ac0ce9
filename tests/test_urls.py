"""Root URLs: the API docs page is self-contained."""

from __future__ import annotations

import re
from typing import Any


def test_api_docs_page_loads_nothing_from_another_host(make_key: Any) -> None:
    client, _ = make_key("reviewer")
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    page = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    # Every src/href/url is a path on this server: no scheme, no protocol-relative "//host".
    references = re.findall(r"""(?:src|href|url)\s*[=:]\s*["'`]([^"'`]*)["'`]""", page)
    assert len(references) >= 4, references
    external = [ref for ref in references if re.match(r"^(?:[a-z][a-z0-9+.-]*:)?//", ref, re.IGNORECASE)]
    assert external == []
    assert "cdn.jsdelivr.net" not in page


def test_api_docs_assets_are_served_by_staticfiles() -> None:
    from django.contrib.staticfiles import finders

    for asset in ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css", "favicon-32x32.png"):
        assert finders.find(f"drf_spectacular_sidecar/swagger-ui-dist/{asset}"), asset
