"""Error hierarchy shared by every layer.

Each layer raises a subclass of :class:`CitedeskError`; the API maps them to HTTP
status codes (see ``citedesk.serving.api.app``).
"""


class CitedeskError(Exception):
    """Base class of every error citedesk raises on purpose."""


class ConfigError(CitedeskError):
    """Settings are missing or inconsistent (e.g. ``generator=openai`` with no ``llm.base_url``)."""


class ConnectorError(CitedeskError):
    """A source (Intercom, a folder) could not be listed or read.

    Raised on 4xx/5xx answers that survived the retry policy, malformed payloads,
    or an unreadable folder.
    """


class ContentError(CitedeskError):
    """One article could not be cleaned or chunked (reported per article, never aborts a sync)."""


class IndexUnavailableError(CitedeskError):
    """The vector index (Qdrant, local or remote) could not be reached or answered an error."""


class GeneratorUnavailableError(CitedeskError):
    """The LLM endpoint could not be reached, timed out or answered 5xx."""
