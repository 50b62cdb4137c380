"""Ingest: clean → chunk → embed → write, and the sync that drives it."""
