"""Alembic migrations of Charter: the authorization server's and the resource server's tables.

Installed with the distribution so that :func:`authserver.storage.schema.prepare_database`
can upgrade a database without the source tree (the path comes from this package, not the CWD).
"""
