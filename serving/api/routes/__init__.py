"""One FastAPI router module per resource: answer, voice, audit, webhooks, health."""
