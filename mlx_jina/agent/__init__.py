"""The knowledge base for agents: an MCP server (`mlx-jina mcp` on stdio, /mcp on `mlx-jina serve`)."""
