"""``citedesk mcp``: the help-center tools (answer, search_help_center) as an MCP server."""
