"""Operations: Prometheus metrics (``metrics.py``), JSON request logs with request ids (``logs.py``)."""
