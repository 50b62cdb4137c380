"""The SQL database: engine, declarative base and Alembic migrations (SQLite by default, PostgreSQL for replicas)."""
