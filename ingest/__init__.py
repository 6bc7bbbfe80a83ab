"""Ingest: turn one raw inbound message into stored, threaded, screened domain state.

A named pipeline of small stages (see ``ingest.pipeline``): parse ->
screen -> identify contact -> thread -> persist, where persist is one
transaction for conversation, ticket, message and outbox events.
"""
