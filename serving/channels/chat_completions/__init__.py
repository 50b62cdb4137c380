"""OpenAI-compatible chat completions: wire models and the responder over the answer pipeline."""
