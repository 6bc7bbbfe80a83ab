"""Protocol edges: SMTP, IMAP, Messenger, chat and form webhooks.

Each edge turns its input into raw bytes plus an envelope, stores them
durably, hands them to ingest, and acknowledges only after that is
committed.  No business logic lives here.
"""
