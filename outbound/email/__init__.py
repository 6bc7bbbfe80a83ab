"""Outbound email: render templates, compose MIME, send to the smarthost or the spool."""
