"""Sources of articles (Intercom help center, a folder of files) and webhooks."""
