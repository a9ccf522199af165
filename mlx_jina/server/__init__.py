"""A local embedding server (`mlx-jina serve`) speaking the Jina, OpenAI and Ollama embedding APIs,
plus MCP for agents.

See `mlx_jina/server/API.md` for every endpoint, field, default and error.
"""
