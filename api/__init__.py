"""The HTTP API for operations teams and agents (aiohttp), with health, metrics and OpenAPI."""
