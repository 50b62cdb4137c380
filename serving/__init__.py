"""Serving: the answer pipeline, generators, FastAPI app and the ``citedesk`` CLI."""
