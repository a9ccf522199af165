"""Call a running `mlx-jina serve` with plain httpx: the Jina API request, then a search.

    mlx-jina serve &                      # http://127.0.0.1:8765, model stays loaded
    python examples/client_httpx.py

Any HTTP client in any language works the same way: POST JSON, read JSON.
"""

from __future__ import annotations

import base64
import os

import httpx
import numpy as np

BASE_URL = os.environ.get("MLX_JINA_URL", "http://127.0.0.1:8765")
TOKEN = os.environ.get("MLX_JINA_API_TOKEN")  # only if the server was started with --api-token

headers = {"Authorization": f"Bearer {TOKEN}"} if TOKEN else {}
with httpx.Client(base_url=BASE_URL, headers=headers, timeout=60) as http:
    model = http.get("/v1/models").json()["data"][0]
    dims = [d for d in model["matryoshka_dimensions"] if d <= 256][-1]  # a Matryoshka size; null = full
    print("model:", model["id"], "dimensions:", dims)

    # Queries and documents use different tasks (the "Query: " / "Document: " prompts).
    docs = http.post("/v1/embeddings", json={
        "model": "jina-embeddings-v5-text-small",
        "task": "retrieval.passage",
        "input": ["Shakshuka is eggs poached in a spiced tomato sauce.", {"text": "Oil a bike chain monthly."}],
        "dimensions": dims,
        "embedding_type": ["base64", "ubinary"],  # a list: each embedding is an object keyed by type
    })
    docs.raise_for_status()
    query = http.post("/v1/embeddings", json={"task": "retrieval.query", "input": "how do I cook eggs?",
                                              "dimensions": dims})
    query.raise_for_status()

    doc_vectors = np.array([np.frombuffer(base64.b64decode(d["embedding"]["base64"]), dtype="<f4")
                            for d in docs.json()["data"]])
    q = np.array(query.json()["data"][0]["embedding"], dtype=np.float32)
    print("cosine:", doc_vectors @ q)  # vectors are L2-normalised unless "normalized": false
    print("tokens used:", docs.json()["usage"]["total_tokens"])

    # Only when the server was started with --db PATH (a knowledge base made by `mlx-jina index`).
    hits = http.post("/v1/search", json={"query": "eggs in tomato sauce", "k": 5})
    if hits.status_code == 200:
        for hit in hits.json()["data"]:
            print(f"{hit['score']:.4f}  {hit['rel']}:{hit['start_line']}  {hit['heading']}")
    else:
        print("search:", hits.json()["detail"])
