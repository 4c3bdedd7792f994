"""SQL storage of the authorization server (SQLAlchemy 2, typed models)."""
