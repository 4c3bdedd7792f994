"""OAuth clients: the client store, metadata validation, dynamic registration, client ID
metadata documents, presented credentials and client authentication, the SSRF guard."""
