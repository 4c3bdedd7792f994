"""The admin console's routes (S93): ``GET /admin…`` pages and ``POST /admin/action``.

- Every page: not signed in → 303 to the sign-in page and back; signed in but not an admin →
  403; an admin → the page, whose forms carry the console's CSRF token. A GET changes nothing.
- ``POST /admin/action`` (``csrf_token``, ``action``, ``target``, the action's options,
  ``confirm``): a token not derived from this browser's login → 403 (before anything else is
  looked at); a non-admin → 403; an unknown action → 404. Without ``confirm=yes`` the answer is
  the confirmation page and nothing changes; with it the action runs (audited with the admin as
  actor) and the answer is 303 back to the action's page with its notice — or, for a new secret
  or one-time password, a page showing it once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from authserver.browser.account_forms import CONSOLE_FORM, form_token
from authserver.browser.account_pages import when
from authserver.browser.cookies import SESSION_COOKIE, read_cookie
from authserver.browser.forms import Form, single
from authserver.browser.pages import LOGOUT_PATH, error_page, redirect, render_page
from authserver.browser.signed_in import APPLICATIONS_PATH, CONSOLE_PATH, SignedIn
from authserver.console import clients, grants, keys, trail, users
from authserver.console.actions import Action, ActionRequest, Refused
from authserver.console.guard import admin_for_page, admin_for_post
from authserver.console.overview import overview_page
from authserver.context import AuthServer
from authserver.endpoints.bodies import read_browser_form

ACTION_PATH = CONSOLE_PATH + "/action"
View = Callable[[AuthServer, Session, Mapping[str, str]], dict[str, Any]]
#: Path under ``/admin`` -> (template, view).
PAGES: dict[str, tuple[str, View]] = {
    "": ("console_overview.html", overview_page),
    clients.PAGE: ("console_clients.html", clients.clients_page),
    clients.SHOW_PAGE: ("console_client.html", clients.client_page),
    users.PAGE: ("console_users.html", users.users_page),
    keys.PAGE: ("console_keys.html", keys.keys_page),
    grants.PAGE: ("console_grants.html", grants.grants_page),
    trail.PAGE: ("console_audit.html", trail.audit_page),
}
ACTIONS: dict[str, Action] = {
    action.name: action
    for action in (*clients.ACTIONS, *users.ACTIONS, *keys.ACTIONS, *grants.ACTIONS)
}


class Console:
    """The console's blocking work (SQL, argon2), run in a thread."""

    def __init__(self, server: AuthServer) -> None:
        self.server = server
        self.base = server.settings.issuer_path + CONSOLE_PATH

    def _render(
        self, admin: SignedIn, template: str, context: Mapping[str, Any], status_code: int = 200
    ) -> Response:
        common = {
            "admin_username": admin.username,
            "csrf_token": form_token(CONSOLE_FORM, admin.cookie_value),
            "action_path": self.base + "/action",
            "console": self.base,
            "applications_path": self.server.settings.issuer_path + APPLICATIONS_PATH,
            "logout_path": self.server.settings.issuer_path + LOGOUT_PATH,
            "when": when,
        }
        return render_page(self.server, template, {**common, **context}, status_code=status_code)

    def page(
        self, sub_path: str, query: Mapping[str, str], cookie: str | None, url: str
    ) -> Response:
        """``GET /admin{sub_path}``."""
        admin = admin_for_page(self.server, cookie, url)
        if not isinstance(admin, SignedIn):
            return admin
        template, view = PAGES[sub_path]
        try:
            with self.server.database.transaction() as session:
                context = view(self.server, session, query)
        except Refused as refused:
            return self._refused(refused)
        done = ACTIONS.get(query.get("done", ""))
        notice = done.done if done is not None and done.page == sub_path else None
        return self._render(admin, template, {**context, "notice": notice, "query": query})

    def act(self, form: Form, cookie: str | None) -> Response:
        """``POST /admin/action``."""
        admin = admin_for_post(self.server, cookie, single(form, "csrf_token"))
        if not isinstance(admin, SignedIn):
            return admin
        action = ACTIONS.get(single(form, "action") or "")
        if action is None:
            return error_page(self.server, "not_found", "There is no such action.", status_code=404)
        options = {name: single(form, name) or "" for name in action.options}
        request = ActionRequest(admin, single(form, "target") or "", options, self.server.now())
        try:
            if single(form, "confirm") != "yes":
                return self._confirm(action, request)
            done = action.run(self.server, request)
        except Refused as refused:
            return self._refused(refused)
        if done.secret is not None:
            context = {"done": done, "back": self.base + action.page}
            return self._render(admin, "console_secret.html", context)
        query = urlencode({"done": action.name})
        return redirect(f"{self.base}{action.page}?{query}", status_code=303)

    def _confirm(self, action: Action, request: ActionRequest) -> Response:
        with self.server.database.transaction() as session:
            question = action.question(self.server, session, request)
        context = {
            "question": question,
            "action": action.name,
            "target": request.target,
            "options": dict(request.options),
            "back": self.base + action.page,
        }
        return self._render(request.admin, "console_confirm.html", context)

    def _refused(self, refused: Refused) -> Response:
        return error_page(
            self.server, "invalid_request", refused.message, status_code=refused.status
        )


def console_routes(server: AuthServer) -> list[BaseRoute]:
    """Every console page and the action form."""
    console = Console(server)
    settings = server.settings

    def page_endpoint(sub_path: str) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            query = dict(request.query_params.items())
            wanted = settings.issuer_path + CONSOLE_PATH + sub_path
            if request.url.query:
                wanted += "?" + request.url.query
            cookie = read_cookie(request, settings, SESSION_COOKIE)
            return await run_in_threadpool(console.page, sub_path, query, cookie, wanted)

        return endpoint

    async def act(request: Request) -> Response:
        form = await read_browser_form(request)
        if form is None:
            return error_page(server, "invalid_request", "Expected a form post.")
        cookie = read_cookie(request, settings, SESSION_COOKIE)
        return await run_in_threadpool(console.act, form, cookie)

    routes: list[BaseRoute] = [
        Route(CONSOLE_PATH + sub_path, page_endpoint(sub_path), methods=["GET", "HEAD"])
        for sub_path in PAGES
    ]
    routes.append(Route(ACTION_PATH, act, methods=["POST"]))
    return routes
