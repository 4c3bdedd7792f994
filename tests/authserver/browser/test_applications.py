"""The connected-applications page (S94): a user sees only the applications holding *their*
grants, and revokes only their own; the form needs its CSRF token and a confirmation; a browser
that is not signed in is sent to sign in and comes back."""

from __future__ import annotations

from collections.abc import Callable

from authserver.context import AuthServer
from tests.support.account import (
    add_grant,
    audit_rows,
    browser,
    form,
    forms,
    live_grants,
    sign_in,
    token_revoked,
)
from tests.support.factories import create_client, create_user
from tests.support.pages import assert_no_third_party_resources, assert_page_headers


def two_users(server: AuthServer) -> dict[str, str]:
    """alice and bob both use "Shared App"; only bob uses "Bob's App"."""
    alice = create_user(server, "alice")
    bob = create_user(server, "bob")
    shared, _ = create_client(server, client_name="Shared App")
    bobs, _ = create_client(server, client_name="Bob's App")
    ids = {"alice": alice.id, "bob": bob.id, "shared": shared.client_id, "bobs": bobs.client_id}
    ids["alice_jti"] = add_grant(server, alice.id, shared.client_id)[1]
    ids["bob_shared_jti"] = add_grant(server, bob.id, shared.client_id)[1]
    ids["bob_jti"] = add_grant(server, bob.id, bobs.client_id, "mcp notes:write")[1]
    return ids


async def test_s94_user_sees_only_their_own_applications(
    make_server: Callable[..., AuthServer],
) -> None:
    server = make_server()
    ids = two_users(server)
    async with browser(server) as alice:
        await sign_in(alice, "alice")
        page = await alice.get("/account/applications")
    assert page.status_code == 200
    assert_page_headers(page)
    assert_no_third_party_resources(page.text)
    assert "Shared App" in page.text
    assert ids["shared"] in page.text
    assert "notes:read" in page.text
    assert "http://127.0.0.1:8000/mcp" in page.text
    assert "Bob&#39;s App" not in page.text and "Bob's App" not in page.text
    assert ids["bobs"] not in page.text
    assert "notes:write" not in page.text
    revoke_forms = forms(page, "revoke-application")
    assert [each.fields["client_id"] for each in revoke_forms] == [ids["shared"]]


async def test_s94_forged_revoke_of_another_users_application_changes_nothing(
    make_server: Callable[..., AuthServer],
) -> None:
    server = make_server()
    ids = two_users(server)
    async with browser(server) as alice:
        await sign_in(alice, "alice")
        page = await alice.get("/account/applications")
        fields = form(page, "revoke-application").fields
        # alice's own valid token, naming bob's application: nothing of alice's there.
        forged = await alice.post(
            "/account/applications/revoke",
            data={**fields, "client_id": ids["bobs"], "confirm": "yes"},
        )
        assert forged.status_code == 404
        unconfirmed = await alice.post(
            "/account/applications/revoke", data={**fields, "client_id": ids["bobs"]}
        )
        assert unconfirmed.status_code == 404
    assert live_grants(server, ids["bob"]) == 2
    assert not token_revoked(server, ids["bob_jti"])
    assert audit_rows(server, "application_revoked") == []

    # Revoking the application both use ends alice's access only.
    async with browser(server) as alice:
        await sign_in(alice, "alice")
        page = await alice.get("/account/applications")
        fields = form(page, "revoke-application").fields
        done = await alice.post("/account/applications/revoke", data={**fields, "confirm": "yes"})
        assert done.status_code == 303
        after = await alice.get(done.headers["location"])
    assert "Access revoked." in after.text
    assert "Shared App" not in after.text
    assert live_grants(server, ids["alice"]) == 0
    assert token_revoked(server, ids["alice_jti"])
    assert live_grants(server, ids["bob"], ids["shared"]) == 1
    assert not token_revoked(server, ids["bob_shared_jti"])
    [row] = audit_rows(server, "application_revoked")
    assert row.subject == ids["alice"]
    assert row.client_id == ids["shared"]
    assert row.detail["actor"] == ids["alice"]
    assert row.detail["revoked_grants"] == 1


async def test_s94_revoke_needs_the_forms_token_and_a_confirmation(
    make_server: Callable[..., AuthServer],
) -> None:
    server = make_server()
    ids = two_users(server)
    async with browser(server) as bob:
        await sign_in(bob, "bob")
        bobs_token = form(await bob.get("/account/applications"), "revoke-application").fields[
            "csrf_token"
        ]
    async with browser(server) as alice:
        await sign_in(alice, "alice")
        page = await alice.get("/account/applications")
        fields = form(page, "revoke-application").fields
        target = {"client_id": ids["shared"], "confirm": "yes"}
        missing = await alice.post("/account/applications/revoke", data=target)
        wrong = await alice.post(
            "/account/applications/revoke", data={**target, "csrf_token": bobs_token}
        )
        assert (missing.status_code, wrong.status_code) == (403, 403)
        assert live_grants(server, ids["alice"]) == 1

        asked = await alice.post("/account/applications/revoke", data=fields)
        assert asked.status_code == 200
        assert_page_headers(asked)
        assert "Revoke the access of" in asked.text
        assert live_grants(server, ids["alice"]) == 1
        assert not token_revoked(server, ids["alice_jti"])
        confirm = form(asked, "confirm-revoke-application").fields
        assert confirm["confirm"] == "yes"
        done = await alice.post("/account/applications/revoke", data=confirm)
        assert done.status_code == 303
    assert token_revoked(server, ids["alice_jti"])
    # A signed-out browser's post does nothing either.
    async with browser(server) as stranger:
        posted = await stranger.post("/account/applications/revoke", data={**fields, **target})
        assert posted.status_code == 403
    assert live_grants(server, ids["bob"]) == 2


async def test_not_signed_in_goes_to_sign_in_and_back(
    make_server: Callable[..., AuthServer],
) -> None:
    server = make_server()
    two_users(server)
    async with browser(server) as client:
        answer = await client.get("/account/applications")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/account/sign-in?next=%2Faccount%2Fapplications"
        page = await client.get(answer.headers["location"])
        assert_page_headers(page)
        assert form(page, "account-sign-in").fields["next"] == "/account/applications"
        await sign_in(client, "alice")
        assert (await client.get("/account/applications")).status_code == 200


async def test_sign_in_page_refuses_forged_forms_and_foreign_next(
    make_server: Callable[..., AuthServer],
) -> None:
    server = make_server()
    two_users(server)
    async with browser(server) as client:
        page = await client.get("/account/sign-in", params={"next": "https://evil.example/"})
        fields = form(page, "account-sign-in").fields
        assert fields["next"] == "/account/applications"
        for evil in ("//evil.example/admin", "/admin/../../x", "/authorize?x=1"):
            again = await client.get("/account/sign-in", params={"next": evil})
            assert form(again, "account-sign-in").fields["next"] == "/account/applications"
        wrong = await client.post(
            "/account/sign-in",
            data={**fields, "csrf_token": "x" * 64, "username": "alice", "password": "whatever"},
        )
        assert wrong.status_code == 403
        bad_password = await client.post(
            "/account/sign-in", data={**fields, "username": "alice", "password": "nope"}
        )
        assert bad_password.status_code == 401
        assert "Wrong username or password." in bad_password.text
    async with browser(server) as other:
        # Another browser's token (bound to its own browser cookie) is refused.
        posted = await other.post(
            "/account/sign-in", data={**fields, "username": "alice", "password": "x"}
        )
        assert posted.status_code == 403


async def test_home_page_links_the_account_pages(
    make_server: Callable[..., AuthServer],
) -> None:
    server = make_server()
    two_users(server)
    async with browser(server) as client:
        anonymous = await client.get("/")
        assert 'id="sign-in-link"' in anonymous.text
        assert 'id="applications-link"' not in anonymous.text
        await sign_in(client, "alice")
        signed_in = await client.get("/")
        assert 'href="/account/applications"' in signed_in.text
        assert 'id="console-link"' not in signed_in.text
