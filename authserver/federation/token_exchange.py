"""The upstream token and userinfo requests of the relying party (OpenID Connect Core
§3.1.3.1-§3.1.3.3 and §5.3, RFC 6749 §4.1.3 and §2.3.1, RFC 7636 §4.5; S81).

The code, our callback URI and the PKCE verifier are posted to the provider's token endpoint
with ``client_secret_basic`` (RFC 6749 §2.3.1, form-encoded credentials),
``client_secret_post`` or ``private_key_jwt`` (RFC 7523 §2.2), through the SSRF guard (every
address checked, no redirects, the body capped, one time budget); the UserInfo GET too.
Blocking: call from a worker thread.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import quote

from authserver.clients.ssrf.addresses import FetchError, FetchPolicy, check_url
from authserver.federation.client_assertion import ASSERTION_TYPE


class TokenRequestError(Exception):
    """The provider did not give tokens for the code; the message says why."""


def _basic(client_id: str, secret: str) -> str:
    pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def redeem_code(
    token_endpoint: str,
    policy: FetchPolicy,
    *,
    code: str,
    redirect_uri: str,
    code_verifier: str,
    client_id: str,
    client_secret: str | None,
    auth_method: str,
    client_assertion: str | None = None,
) -> dict[str, Any]:
    """The token response of ``code`` (a JSON object with an ``id_token``); the client
    authenticates with ``client_assertion`` (``private_key_jwt``) when one is given."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": code_verifier,
    }
    headers = {"Accept": "application/json", "User-Agent": "charter-authserver"}
    if client_assertion is not None:
        form["client_id"] = client_id
        form["client_assertion_type"] = ASSERTION_TYPE
        form["client_assertion"] = client_assertion
    elif client_secret is not None and auth_method == "client_secret_basic":
        headers["Authorization"] = _basic(client_id, client_secret)
    else:
        form["client_id"] = client_id
        if client_secret is not None:
            form["client_secret"] = client_secret
    status, answer = _guarded(
        "POST", token_endpoint, policy, headers, form, what="the provider's token endpoint"
    )
    if status != 200:
        error_code = str(answer.get("error", status))[:100]
        raise TokenRequestError(f"the provider refused the code ({error_code})")
    if not isinstance(answer.get("id_token"), str):
        raise TokenRequestError("the provider's token response has no ID token")
    return answer


def fetch_userinfo(
    userinfo_endpoint: str, policy: FetchPolicy, access_token: str
) -> dict[str, Any]:
    """The claims of the UserInfo endpoint (OpenID Connect Core §5.3) for ``access_token``."""
    headers = {
        "Accept": "application/json",
        "User-Agent": "charter-authserver",
        "Authorization": f"Bearer {access_token}",
    }
    status, answer = _guarded(
        "GET", userinfo_endpoint, policy, headers, None, what="the provider's userinfo endpoint"
    )
    if status != 200:
        raise TokenRequestError(f"the provider's userinfo endpoint answered {status}")
    return answer


def _guarded(
    method: str,
    url: str,
    policy: FetchPolicy,
    headers: dict[str, str],
    form: dict[str, str] | None,
    *,
    what: str,
) -> tuple[int, dict[str, Any]]:
    """One request through the guard; its status and JSON object (every failure a
    :class:`TokenRequestError` naming ``what``)."""
    import httpcore  # with the first upstream sign-in, not when the worker starts
    import httpx

    try:
        return _request(method, url, policy, headers, form, what)
    except FetchError as error:
        raise TokenRequestError(f"{what} is refused ({error})") from error
    except (httpcore.TimeoutException, httpx.TimeoutException) as error:
        raise TokenRequestError(f"{what} did not answer in time") from error
    except (httpcore.NetworkError, httpcore.ProtocolError, httpx.HTTPError, OSError) as error:
        raise TokenRequestError(f"{what} failed ({type(error).__name__})") from error


def _request(
    method: str,
    url: str,
    policy: FetchPolicy,
    headers: dict[str, str],
    form: dict[str, str] | None,
    what: str,
) -> tuple[int, dict[str, Any]]:
    import httpx

    from authserver.clients.ssrf.network import GuardedTransport

    parsed = check_url(url, policy)
    deadline = time.monotonic() + policy.timeout
    with (
        httpx.Client(
            transport=GuardedTransport(policy),
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(policy.timeout),
        ) as client,
        client.stream(method, parsed, data=form, headers=headers) as response,
    ):
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > policy.max_bytes:
                raise TokenRequestError(f"the answer of {what} is too large")
            if time.monotonic() > deadline:
                raise TokenRequestError(f"{what} took too long")
        try:
            answer = json.loads(bytes(body))
        except (UnicodeDecodeError, ValueError) as error:
            raise TokenRequestError(f"the answer of {what} is not JSON") from error
        if not isinstance(answer, dict):
            raise TokenRequestError(f"the answer of {what} is not a JSON object")
        return response.status_code, answer
