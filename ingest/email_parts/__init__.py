"""Small, pure helpers the email parser is built from: charsets, headers, bodies, attachments, TNEF, quotes, forwards."""
