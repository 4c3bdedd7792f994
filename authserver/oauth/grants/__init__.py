"""The grant types of the token endpoint (RFC 6749 §4, §6): one module per grant, and the
registry of the grants this server accepts (:mod:`authserver.oauth.grants.registry`)."""
