"""Frontdesk's shared core: domain model, storage, event schema and settings.

Every other package (ingest, channels, automation, outbound, api, runtime)
imports from here; this package imports none of them.
"""
