"""Channels that carry answers to people: Intercom chat drafts and voice."""
