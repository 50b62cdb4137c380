"""Typed settings (pydantic-settings). Read only at the composition root (CLI, ``create_app``)."""

from citedesk.config.settings import Settings, load_settings

__all__ = ["Settings", "load_settings"]
