"""What every HTML page of the browser flow must carry (S8, S52): its security headers and no
resource from another origin."""

from __future__ import annotations

import re

import httpx


def assert_page_headers(response: httpx.Response, *form_action: str) -> None:
    headers = response.headers
    csp = headers["content-security-policy"]
    directives = {part.split()[0]: part.split()[1:] for part in csp.split(";") if part.strip()}
    assert directives["default-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["style-src"] == ["'unsafe-inline'"]
    assert directives["form-action"][0] == "'self'"
    assert set(form_action) <= set(directives["form-action"])
    assert "script-src" not in directives
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    assert headers["content-type"].startswith("text/html")
    assert not any(name.lower().startswith("access-control-") for name in headers)


def assert_no_third_party_resources(html: str) -> None:
    assert not re.search(r"<(script|img|link|iframe|object|embed)\b", html, re.IGNORECASE)
    assert not re.search(r"\bsrc\s*=", html, re.IGNORECASE)
    assert "url(" not in html
    assert "@import" not in html
