"""The tickets domain: the rules every path that touches a ticket obeys.

Creating a ticket (ingest, the API, forms), moving its status, the pipeline
and property rules, access decisions and audit records live here, above the
shared core and below everything that uses them. Rules raise
``frontdesk.tickets.errors.DomainError``; only ``frontdesk.api`` turns those
into HTTP answers.
"""
