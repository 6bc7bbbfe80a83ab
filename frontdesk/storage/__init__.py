"""Persistence: the database engine and sessions, blob storage, migrations."""
