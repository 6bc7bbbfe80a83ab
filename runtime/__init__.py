"""Wiring: the ``frontdesk`` command, the ingestion daemon and the workflow worker."""
