"""One token request as authlib sees it (RFC 6749 §3.2): single-valued form fields, the
``resource`` values (RFC 8707 §2), the presented client credentials (§2.3), the client's IP."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload

from authserver.clients.credentials import PresentedCredentials, presented_credentials


class TokenEndpointRequest(OAuth2Request):  # type: ignore[misc]
    """A parsed token request: single-valued form fields, ``resource`` values, credentials."""

    def __init__(
        self,
        uri: str,
        form: Mapping[str, str],
        resources: Sequence[str],
        headers: Mapping[str, str],
        *,
        ip: str | None,
    ) -> None:
        super().__init__("POST", uri, headers=dict(headers))
        self._form = dict(form)
        self.payload = BasicOAuth2Payload(self._form)
        self.resources = list(resources)
        self.ip = ip
        self.credentials: PresentedCredentials = presented_credentials(headers, self._form)

    @property
    def form(self) -> dict[str, str]:
        return self._form

    @property
    def args(self) -> dict[str, str]:
        return {}
