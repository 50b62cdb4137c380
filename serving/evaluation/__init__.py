"""Offline evaluation: retrieval metrics, answer evals, confidence calibration and the LlamaIndex baseline."""
