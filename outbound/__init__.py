"""Outbound: render and send email, Messenger and chat replies, one delivery record each."""
