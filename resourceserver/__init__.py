"""Charter's protected MCP server (resource server).

Never imports :mod:`authserver`: it trusts an issuer through a JWKS and a revocation view
handed to it by the composition root.
"""
