"""Serving: everything that answers — the answer domain, the HTTP API, channels, audit, evaluation and the CLI."""
