"""Validating tokens of an external authorization server (resource-server-only mode): its
metadata (RFC 8414 / OpenID Connect Discovery), its JWKS, RFC 7662 introspection."""
