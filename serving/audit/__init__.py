"""The audit log: tables, recording, redaction, and the reports support managers read."""
