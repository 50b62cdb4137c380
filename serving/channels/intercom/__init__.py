"""The Intercom chat-draft channel: webhook parsing, conversation client, drafting worker, note formatting, delivery store."""
