"""OAuth 2.1 core: grants, the authlib adapter, tokens, keys, scopes, resources, PKCE."""
