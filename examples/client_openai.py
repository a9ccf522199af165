"""Call a running `mlx-jina serve` with the official `openai` package (pip install openai).

    mlx-jina serve &
    python examples/client_openai.py

The server speaks OpenAI's /v1/embeddings: `encoding_format` float or base64, `dimensions`.
Jina-only fields (task, normalized, truncate, embedding_type) go in `extra_body`.
"""

from __future__ import annotations

import os

from openai import OpenAI

client = OpenAI(base_url=os.environ.get("MLX_JINA_URL", "http://127.0.0.1:8765") + "/v1",
                api_key=os.environ.get("MLX_JINA_API_TOKEN", "unused"))  # the SDK insists on a key

result = client.embeddings.create(
    model="jina-embeddings-v5-text-small",
    input=["Shakshuka is eggs poached in a spiced tomato sauce.", "Oil a bike chain monthly."],
    extra_body={"task": "retrieval.passage"},  # default task: text-matching, as in the Jina API
    # dimensions=512,  # any Matryoshka size the model lists in GET /v1/models
)
print(len(result.data), "vectors of", len(result.data[0].embedding), "dimensions;",
      result.usage.prompt_tokens, "tokens")
