"""The answer domain: pipeline (retrieve → confidence → generate → check), grounding checks, generators, request/response schemas."""
