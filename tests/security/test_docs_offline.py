"""/docs renders without internet: Swagger UI's assets come from the API itself, not a CDN,
and need no API key (this API requires one for everything else)."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import pytest

URL = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\s*:\s*["']([^"']+)["']""")
ABSOLUTE = re.compile(r"(?:https?:)?//[\w.-]+(?::\d+)?[^\s\"'<>)]*")


def test_docs_page_refers_only_to_its_own_host(secure_api):
    own = urlsplit(secure_api.url).netloc
    with secure_api.client() as c:  # no key
        r = c.get("/docs")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        page = r.text
        foreign = [u for u in ABSOLUTE.findall(page) if urlsplit(u).netloc not in ("", own)]
        assert not foreign, f"/docs loads from other hosts: {foreign}"
        refs = [a or b for a, b in URL.findall(page)]
        assets = [u for u in refs if u.endswith((".js", ".css", ".png"))]
        assert {u.rsplit("/", 1)[-1] for u in assets} >= {"swagger-ui-bundle.js", "swagger-ui.css"}
        for ref in refs:
            full = urljoin(secure_api.url + "/docs", ref)
            assert urlsplit(full).netloc == own, ref
            got = c.get(full)
            assert got.status_code == 200, (ref, got.status_code)
            assert got.content, ref
        assert any(u.endswith("/openapi.json") for u in refs), refs


@pytest.mark.parametrize("path", ["/static/vendor/swagger-ui/swagger-ui.css"])
def test_the_stylesheet_loads_nothing_from_elsewhere(secure_api, path):
    with secure_api.client() as c:
        css = c.get(path).text
    assert not re.findall(r"url\(\s*[\"']?(?:https?:)?//", css), "the CSS imports remote files"
    assert "@import" not in css
