"""The paths of the upstream sign-in (OpenID Connect Core 1.0 §3.1.2.1, §3.1.2.5): the start
link of the login page and the redirection endpoint registered at each provider.

Their own module so that the routes can be made without importing the relying party, which
loads on the first upstream sign-in (:mod:`authserver.endpoints.upstream_login`).
"""

from __future__ import annotations

START_PATH = "/login/idp/{slug}"
CALLBACK_PATH = "/login/idp/callback"
