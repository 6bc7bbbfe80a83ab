"""Webhook channels: Facebook Messenger, live chat and web forms, as one aiohttp sub-application."""
