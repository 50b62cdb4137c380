"""The HTTP API: app factory, shared FastAPI dependencies (deps.py), auth, limits, and one routes module per resource."""
