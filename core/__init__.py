"""Shared types, protocols and errors of citedesk (no third-party SDK imports)."""
