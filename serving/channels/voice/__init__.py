"""The voice channel: speakable text, pacing, signed voice state, the streaming responder and its websocket."""
