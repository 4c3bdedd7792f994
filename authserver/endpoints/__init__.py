"""The authorization server's HTTP endpoints, one module per endpoint."""
