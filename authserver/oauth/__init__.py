"""OAuth 2.1 core: the grants behind one registry, the authlib adapter, access tokens, PKCE,
scopes, resource indicators, redirect URIs and authorization requests."""
