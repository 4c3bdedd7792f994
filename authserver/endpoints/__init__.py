"""The authorization server's HTTP endpoints, one thin module per endpoint, with the one body
reader, CORS and the OAuth error answer they share."""
