"""Charter's embedded OAuth 2.1 authorization server."""
