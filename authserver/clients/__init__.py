"""OAuth clients: the client store, authentication, metadata, metadata documents, SSRF guard."""
