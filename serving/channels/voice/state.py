"""Signed ``voice_state``: what is left to say travels with the client, HMAC-signed and bound to the workspace.

Why stdlib ``hmac`` and not ``itsdangerous``: the signature is a detached field of a JSON object the client
echoes back (:class:`~citedesk.serving.answer.schemas.VoiceState`), computed over the canonical JSON of its
other fields and the workspace; ``itsdangerous`` signs opaque strings (payload and signature joined), which
would change the wire shape of ``voice_state`` for the same two calls (sign, constant-time compare).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets

from citedesk.core.errors import CitedeskError
from citedesk.serving.answer.schemas import VoiceState

__all__ = ["StateSigner", "VoiceStateError"]


class VoiceStateError(CitedeskError):
    """A ``voice_state`` sent back by a client was altered or is not ours (the API answers 409)."""


class StateSigner:
    """HMAC-SHA256 over a :class:`VoiceState` (all fields but ``signature``).

    Args:
        key: secret bytes; a random per-process key when None (then a state is only valid on the
            replica that issued it).
    """

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def _mac(self, state: VoiceState, workspace: str) -> str:
        body = json.dumps([workspace, state.model_dump(mode="json", exclude={"signature"})], sort_keys=True,
                          separators=(",", ":"))
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()

    def sign(self, state: VoiceState, workspace: str = "default") -> VoiceState:
        """The state with its signature set (bound to ``workspace``: another tenant cannot replay it)."""
        return state.model_copy(update={"signature": self._mac(state, workspace)})

    def verify(self, state: VoiceState, workspace: str = "default") -> VoiceState:
        """The state, when its signature matches (issued by this key for this workspace).

        Raises:
            VoiceStateError: altered or foreign state.
        """
        if not hmac.compare_digest(state.signature.encode("utf-8", "surrogatepass"),
                                   self._mac(state, workspace).encode("utf-8")):
            raise VoiceStateError("voice_state was altered or was issued by another server "
                                  "(send it back unchanged; set voice.state_secret on every replica)")
        return state
