"""Typed settings (pydantic-settings). Read only at the composition root (CLI, ``create_app``)."""

from config.settings import Settings, load_settings

__all__ = ["Settings", "load_settings"]
