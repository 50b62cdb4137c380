"""Ingest: clean → chunk → embed → write into the store, and the sync that drives it (imports retrieval's store and encoders)."""
