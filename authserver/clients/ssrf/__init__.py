"""An SSRF guard for the server's outbound fetches (S49): client ID metadata documents and,
later, remote ``jwks_uri`` documents (draft-ietf-oauth-client-id-metadata-document §6.5/§6.6,
RFC 9700 §4.15 on fetched URLs). :func:`authserver.clients.ssrf.fetch.fetch` is the way out.

Rules:

- ``https`` only (``http`` only for allow-listed hosts when ``ssrf_allow_http`` is set);
  no user information; no numeric host spellings other than a canonical dotted quad or an
  IPv6 literal (``2130706433``, ``0x7f000001``, ``017700000001``, ``127.1`` are refused).
- Every address the host resolves to must be public: private, loopback, link-local,
  multicast, reserved, unspecified, CGNAT (100.64/10), IPv4-mapped/compatible IPv6, NAT64,
  and 6to4/Teredo addresses embedding such IPv4 addresses are refused.
- The check runs inside the connection itself (an ``httpcore`` network backend): the name is
  resolved once, the addresses checked, and the socket connects to a checked address, so a
  DNS answer that changes between check and use (rebinding) cannot slip through. TLS still
  verifies the certificate against, and sends SNI for, the original host name.
- Hosts listed in ``ssrf_allowed_hosts`` (``host`` or ``host:port``) skip the address check.
- Redirects are never followed (a 3xx is an error); the body is streamed and abandoned past
  ``max_bytes``; every read, write and connect of a fetch draws on one time budget
  (``timeout``), so a server dripping headers or body cannot hold the fetch longer. Name
  resolution draws on the same budget: it runs in a helper thread that the fetch stops
  waiting for when the budget is spent (a hung resolver thread is left to finish alone).
- No proxy from the environment is used: it would bypass the address check.

Callers cache successful fetches themselves (metadata documents are cached as database rows,
whose number is bounded by a per-host fetch rate and purged after expiry).
"""
