"""Federation: Charter in front of an existing authorization server (resource-server-only mode)
and, later, signing in through upstream OpenID Providers."""
