"""Headers Frontdesk puts on the mail it generates by itself, so it knows that mail when it comes back.

Outbound sets the marker on every automated message; ingest's loop rule
screens any inbound mail carrying it, even when a relay or autoresponder
rewrote the Message-ID that would otherwise identify it.
"""

AUTOMATED_MARKER_HEADER = "X-Frontdesk-Automated"
