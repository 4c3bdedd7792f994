"""The admin console in process (S93): admins only (anonymous browsers are sent to sign in,
other users get 403), every form post needs the console's CSRF token, no action changes
anything before it is confirmed, and every confirmed action is done and audited with the admin
as actor."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from authserver.accounts.users import new_user
from authserver.browser.account_forms import APPLICATIONS_FORM, CONSOLE_FORM, form_token
from authserver.console.routes import ACTIONS, PAGES
from authserver.context import AuthServer
from authserver.storage.models import (
    AccessToken,
    AuditEvent,
    Client,
    Consent,
    Grant,
    LoginSession,
    RefreshToken,
    SigningKey,
    User,
)
from tests.support.account import (
    PASSWORD,
    add_grant,
    browser,
    form,
    forms,
    sign_in,
    token_revoked,
)
from tests.support.factories import create_client, create_user
from tests.support.pages import assert_no_third_party_resources, assert_page_headers

SNAPSHOT_MODELS = (Client, User, Grant, AccessToken, RefreshToken, Consent, SigningKey, AuditEvent)
#: The audit event each action writes.
EVENTS = {
    "client-disable": "client_disabled",
    "client-enable": "client_enabled",
    "client-remove": "client_removed",
    "client-rotate-secret": "client_secret_rotated",
    "user-add": "user_created",
    "user-disable": "user_disabled",
    "user-enable": "user_enabled",
    "user-reset-password": "password_reset",
    "user-make-admin": "user_admin_granted",
    "user-revoke-admin": "user_admin_revoked",
    "user-remove": "user_removed",
    "keys-rotate": "signing_key_rotated",
    "grant-revoke": "admin_revoked",
    "consent-revoke": "consent_revoked",
}


@dataclass
class World:
    server: AuthServer
    admin_id: str
    targets: dict[str, str]
    alice_jti: str
    public_client: str


def add_user(server: AuthServer, name: str, *, admin: bool = False, disabled: bool = False) -> str:
    user = new_user(server, name, PASSWORD, is_admin=admin)
    user.disabled = disabled
    with server.database.transaction() as session:
        session.add(user)
    return user.id


def world(server: AuthServer) -> World:
    """An admin ``root``, users and clients for every action to act on."""
    admin_id = add_user(server, "root", admin=True)
    alice = create_user(server, "alice")
    bob_id = add_user(server, "bob")
    dave_id = add_user(server, "dave", disabled=True)
    eve_id = add_user(server, "eve", admin=True)
    frank_id = add_user(server, "frank")
    notes, _ = create_client(server, client_name="Notes App")
    secretive, _ = create_client(server, client_name="Backend", confidential=True)
    doomed, _ = create_client(server, client_name="Doomed")
    dormant, _ = create_client(server, client_name="Dormant")
    with server.database.transaction() as session:
        row = session.get(Client, dormant.client_id)
        assert row is not None
        row.disabled = True
    journal, _ = create_client(server, client_name="Journal")
    alice_jti = add_grant(server, alice.id, notes.client_id)[1]
    grant_id = add_grant(server, alice.id, secretive.client_id)[0]
    add_grant(server, frank_id, journal.client_id)
    add_grant(server, frank_id, doomed.client_id)
    with server.database.transaction() as session:
        consent_id = session.scalars(
            select(Consent.id).where(
                Consent.user_id == frank_id, Consent.client_id == journal.client_id
            )
        ).one()
    targets = {
        "client-disable": notes.client_id,
        "client-enable": dormant.client_id,
        "client-remove": doomed.client_id,
        "client-rotate-secret": secretive.client_id,
        "user-add": "carol",
        "user-disable": bob_id,
        "user-enable": dave_id,
        "user-reset-password": frank_id,
        "user-make-admin": bob_id,
        "user-revoke-admin": eve_id,
        "user-remove": dave_id,
        "keys-rotate": "signing-keys",
        "grant-revoke": grant_id,
        "consent-revoke": consent_id,
    }
    assert set(targets) == set(ACTIONS), "every console action needs a target here"
    return World(server, admin_id, targets, alice_jti, notes.client_id)


def snapshot(server: AuthServer) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables an action may change."""
    taken: dict[str, list[tuple[Any, ...]]] = {}
    with server.database.transaction() as session:
        for model in SNAPSHOT_MODELS:
            columns = [column.key for column in model.__table__.columns]
            rows = session.scalars(select(model)).all()
            taken[model.__name__] = sorted(
                tuple(repr(getattr(row, name)) for name in columns) for row in rows
            )
    return taken


def console_token(client: httpx.AsyncClient) -> str:
    cookie = client.cookies.get("charter_session")
    assert cookie
    return form_token(CONSOLE_FORM, cookie)


def audit_of(server: AuthServer, event: str) -> list[AuditEvent]:
    with server.database.transaction() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.event == event)))


@pytest.fixture
def setup(make_server: Callable[..., AuthServer]) -> World:
    return world(make_server())


async def test_s93_console_is_for_admins_only(setup: World) -> None:
    server = setup.server
    paths = ["/admin" + sub for sub in PAGES]
    async with browser(server) as anonymous:
        for path in paths:
            answer = await anonymous.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/account/sign-in?next=%2Fadmin")
        # Signing in from there comes back to the console.
        await sign_in(anonymous, "root", next_path="/admin/users")
    async with browser(server) as alice:
        await sign_in(alice, "alice")
        for path in paths:
            answer = await alice.get(path, params={"client_id": setup.public_client})
            assert answer.status_code == 403, path
            assert_page_headers(answer)
            assert "csrf_token" not in answer.text
            assert "Notes App" not in answer.text and "bob" not in answer.text
        home = await alice.get("/")
        assert 'id="console-link"' not in home.text
        # Even a correctly derived console token does not make alice an admin.
        before = snapshot(server)
        for name, target in setup.targets.items():
            data = {"csrf_token": console_token(alice), "action": name, "target": target}
            for confirm in ({}, {"confirm": "yes"}):
                answer = await alice.post("/admin/action", data={**data, **confirm})
                assert answer.status_code == 403, name
        assert snapshot(server) == before
    async with browser(server) as root:
        await sign_in(root, "root", next_path="/admin")
        assert 'id="console-link"' in (await root.get("/")).text
        for path in paths:
            answer = await root.get(path, params={"client_id": setup.public_client})
            assert answer.status_code == 200, path
            assert_page_headers(answer)
            assert_no_third_party_resources(answer.text)
        # A GET never changes anything, whatever it carries.
        before = snapshot(server)
        for name, target in setup.targets.items():
            hostile = {"action": name, "target": target, "confirm": "yes"}
            hostile["csrf_token"] = console_token(root)
            for path in [*paths, "/admin/action"]:
                answer = await root.get(path, params=hostile)
                assert answer.status_code in (200, 404, 405), path
        assert snapshot(server) == before
        # The pages' buttons are forms carrying the console token of this login.
        listed = forms(await root.get("/admin/clients"), "console-action")
        assert {each.fields["action"] for each in listed} >= {"client-disable", "client-remove"}
        assert all(each.fields["csrf_token"] == console_token(root) for each in listed)
        users_page = await root.get("/admin/users")
        assert len(forms(users_page, "console-action")) >= 7 * 3


async def test_s93_every_console_post_needs_the_csrf_token(setup: World) -> None:
    server = setup.server
    async with browser(server) as other_admin:
        await sign_in(other_admin, "eve", next_path="/admin")
        eves_token = console_token(other_admin)
    async with browser(server) as root:
        await sign_in(root, "root", next_path="/admin")
        cookie = root.cookies.get("charter_session")
        assert cookie
        wrong_tokens = [
            None,
            "",
            eves_token,  # another admin's login
            form_token(APPLICATIONS_FORM, cookie),  # another page's token of this login
            "0" * 64,
        ]
        before = snapshot(server)
        for name, target in setup.targets.items():
            for token in wrong_tokens:
                data = {"action": name, "target": target, "confirm": "yes", "admin": "yes"}
                if token is not None:
                    data["csrf_token"] = token
                answer = await root.post("/admin/action", data=data)
                assert answer.status_code == 403, (name, token)
        assert snapshot(server) == before
        # An unknown action with a valid token is 404, and changes nothing either.
        unknown = await root.post(
            "/admin/action",
            data={"csrf_token": console_token(root), "action": "drop-tables", "confirm": "yes"},
        )
        assert unknown.status_code == 404
        assert snapshot(server) == before


async def test_s93_no_action_changes_anything_before_it_is_confirmed(setup: World) -> None:
    server = setup.server
    async with browser(server) as root:
        await sign_in(root, "root", next_path="/admin")
        before = snapshot(server)
        for name, target in setup.targets.items():
            for confirm in ({}, {"confirm": "no"}, {"confirm": "YES"}):
                data = {"csrf_token": console_token(root), "action": name, "target": target}
                answer = await root.post("/admin/action", data={**data, **confirm, "admin": "yes"})
                assert answer.status_code == 200, (name, answer.text)
                assert_page_headers(answer)
                fields = form(answer, "console-confirm").fields
                assert fields["confirm"] == "yes"
                assert (fields["action"], fields["target"]) == (name, target)
        assert snapshot(server) == before


async def test_s93_each_confirmed_action_is_done_and_audited_with_the_admin(setup: World) -> None:
    server = setup.server
    async with browser(server) as root:
        await sign_in(root, "root", next_path="/admin")
        for name, target in setup.targets.items():
            data = {"csrf_token": console_token(root), "action": name, "target": target}
            asked = await root.post("/admin/action", data={**data, "admin": "yes"})
            confirm = form(asked, "console-confirm").fields
            done = await root.post("/admin/action", data=confirm)
            assert done.status_code in (200, 303), (name, done.text)
            if done.status_code == 303:
                page = await root.get(done.headers["location"])
                assert page.status_code == 200
                assert page.text.count('id="notice"') == 1, name
            else:
                assert_page_headers(done)
                assert 'id="secret"' in done.text, name
            [row] = audit_of(server, EVENTS[name])
            assert row.detail["actor"] == setup.admin_id, name
            assert row.detail["actor_username"] == "root"
            assert row.detail["via"] == "console"
    assert token_revoked(server, setup.alice_jti)
    with server.database.transaction() as session:
        carol = session.scalars(select(User).where(User.username == "carol")).one()
        assert carol.is_admin and carol.must_change_password
        names = {row.username for row in session.scalars(select(User))}
        assert "dave" not in names
        assert session.scalars(select(Client).where(Client.client_name == "Doomed")).first() is None
        notes = session.get(Client, setup.public_client)
        assert notes is not None and notes.disabled
        assert len(session.scalars(select(SigningKey)).all()) == 2
        assert session.scalars(select(LoginSession)).first() is not None  # root still signed in


async def test_an_admin_cannot_lock_themselves_out(setup: World) -> None:
    server = setup.server
    async with browser(server) as root:
        await sign_in(root, "root", next_path="/admin")
        before = snapshot(server)
        for name in ("user-disable", "user-remove", "user-revoke-admin", "user-reset-password"):
            data = {"csrf_token": console_token(root), "action": name, "target": setup.admin_id}
            for confirm in ({}, {"confirm": "yes"}):
                answer = await root.post("/admin/action", data={**data, **confirm})
                assert answer.status_code == 409, name
        assert snapshot(server) == before


async def test_audit_trail_filters(setup: World) -> None:
    server = setup.server
    async with browser(server) as first:
        await sign_in(first, "root", next_path="/admin")
    async with browser(server) as root:
        await sign_in(root, "root", next_path="/admin")
        page = await root.get("/admin/audit", params={"event": "login_succeeded", "user": "ROOT"})
        assert page.status_code == 200
        assert page.text.count('data-event="login_succeeded"') == 2
        assert 'data-event="login_failed"' not in page.text
        none = await root.get("/admin/audit", params={"event": "login_succeeded", "user": "alice"})
        assert 'data-event="' not in none.text
        unknown = await root.get("/admin/audit", params={"user": "nobody"})
        assert "There is no such user." in unknown.text
        bad_since = await root.get("/admin/audit", params={"since": "yesterday-ish"})
        assert 'id="filter-problem"' in bad_since.text
        recent = await root.get("/admin/audit", params={"since": "1h", "event": "login_succeeded"})
        assert recent.text.count('data-event="login_succeeded"') == 2
