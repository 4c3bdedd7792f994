"""S99: parallel approvals of one pending authorization give exactly one code and one consent.

The signed-in browser's consent form (one pending request, one CSRF token) is posted
:data:`PARALLEL` times at once over a real socket, each on its own connection. Exactly one POST
answers with the code; every other one gets the "request expired" page (the pending request is
gone), never a second code, a second consent row, or a server error.

The approving transaction pauses :data:`APPROVAL_PAUSE` seconds after deleting the pending row
(as a slow one would), so that the other POSTs read the row meanwhile. Measured before the fix
on PostgreSQL: 6 to 9 of every 50 answered 500 in 6 of 6 bursts (every transaction read the
pending row and issued a code; all but the first failed only at commit, deleting a row already
deleted; the attack on ``main`` also saw several codes committed). :data:`ROUNDS` bursts make a
pass on unfixed code vanishingly unlikely. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import httpx
from sqlalchemy import event, func, select

from authserver.context import AuthServer
from authserver.endpoints.app import create_app
from authserver.storage.models import AuthorizationCode, Consent, PendingAuthorization
from tests.support.browser_flow import authorize_params, parse_forms, pkce_pair
from tests.support.factories import create_client, create_user
from tests.support.live import serve_app

PARALLEL = 50
ROUNDS = 3
#: Seconds a transaction pauses after deleting a pending request (a slow approval).
APPROVAL_PAUSE = 0.1
PASSWORD = "correct horse battery"
REDIRECT = "https://app.example.com/cb"


def only_form(response: httpx.Response, kind: str) -> tuple[str, dict[str, str]]:
    assert response.status_code == 200, response.text
    forms = [form for form in parse_forms(response.text) if form.attrs.get("data-form") == kind]
    assert len(forms) == 1, f"no {kind} form"
    return forms[0].attrs["action"], dict(forms[0].fields)


async def consent_form(
    browser: httpx.AsyncClient, client_id: str, username: str
) -> tuple[str, dict[str, str]]:
    """Start a request, sign in on its login form, and read the consent form."""
    params = authorize_params(client_id, REDIRECT, pkce_pair()[1])
    action, fields = only_form(await browser.get("/authorize", params=params), "login")
    signed_in = await browser.post(
        action, data={**fields, "username": username, "password": PASSWORD}
    )
    assert signed_in.status_code == 303, signed_in.text
    return only_form(await browser.get(signed_in.headers["location"]), "consent")


def outcome(response: httpx.Response | BaseException) -> str:
    if isinstance(response, BaseException):
        return type(response).__name__  # e.g. the server dropped the connection
    if response.status_code == 303 and "code=" in response.headers.get("location", ""):
        return "code"
    return str(response.status_code)


def count(
    server: AuthServer,
    model: type[AuthorizationCode | Consent | PendingAuthorization],
    client_id: str,
) -> int:
    with server.database.transaction() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(model).where(model.client_id == client_id)
            )
            or 0
        )


def pause_after_pending_delete(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
    if " ".join(statement.split()).upper().startswith("DELETE FROM PENDING_AUTHORIZATIONS"):
        time.sleep(APPROVAL_PAUSE)


async def test_s99_parallel_approvals_of_one_request_give_one_code(
    auth_server: AuthServer,
) -> None:
    event.listen(auth_server.database.engine, "after_cursor_execute", pause_after_pending_delete)
    limits = httpx.Limits(max_connections=PARALLEL, max_keepalive_connections=PARALLEL)
    results = {}
    with serve_app(create_app(auth_server)) as base_url:
        for round_no in range(ROUNDS):
            user = create_user(auth_server, f"s99-{round_no}")
            client, _ = create_client(auth_server, redirect_uris=[REDIRECT])
            async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as browser:
                action, fields = await consent_form(browser, client.client_id, user.username)
                approve = {**fields, "decision": "approve"}
                responses = await asyncio.gather(
                    *(browser.post(action, data=approve) for _ in range(PARALLEL)),
                    return_exceptions=True,
                )
            results[round_no] = (
                Counter(outcome(response) for response in responses),
                count(auth_server, AuthorizationCode, client.client_id),
                count(auth_server, Consent, client.client_id),
                count(auth_server, PendingAuthorization, client.client_id),
            )
    expected = (Counter({"code": 1, "400": PARALLEL - 1}), 1, 1, 0)
    wrong = {round_no: got for round_no, got in results.items() if got != expected}
    assert not wrong, f"(answers, codes, consents, pending left) per round: {wrong}"
