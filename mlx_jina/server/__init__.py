"""A local embedding server (`mlx-jina serve`) speaking the Jina and OpenAI embeddings APIs.

See `mlx_jina/server/API.md` for every endpoint, field, default and error.
"""
