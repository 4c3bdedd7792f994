"""SQL storage of the authorization server (SQLAlchemy 2, typed models) and what every part keeps
there: audit trail, rate counters, signing keys, token hashes, revocation."""
