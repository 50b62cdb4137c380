"""Article sources: the Intercom help center and a folder of markdown/HTML files, each yielding core.types.Article."""
