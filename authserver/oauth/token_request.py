"""One token request as authlib sees it (RFC 6749 §3.2): single-valued form fields, the
``resource`` values (RFC 8707 §2), the presented client credentials (§2.3), the client's IP."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload

from authserver.clients.credentials import PresentedCredentials, presented_credentials
from authserver.storage.client_rows import ReadClient


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
        #: The client's row as the grant already read it in this transaction, if it did
        #: (:mod:`authserver.storage.grant_prelude`); client authentication uses it.
        self.read_client: ReadClient | None = None

    @property
    def form(self) -> dict[str, str]:
        return self._form

    @property
    def args(self) -> dict[str, str]:
        return {}
