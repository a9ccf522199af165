"""Call a running `mlx-jina serve` with the official `ollama` package (pip install ollama), the way
apps written for a local Ollama do.

    mlx-jina serve &
    python examples/client_ollama.py

Ollama requests carry no task: the plain model name embeds with `text-matching` (the same call for
notes and queries). The model name's tag picks another task, e.g. `:retrieval.query` for queries and
`:retrieval.passage` for the notes they search; `client.list()` shows every tag.
"""

from __future__ import annotations

import os

import numpy as np
from ollama import Client

token = os.environ.get("MLX_JINA_API_TOKEN")
client = Client(host=os.environ.get("MLX_JINA_URL", "http://127.0.0.1:8765"),
                headers={"Authorization": f"Bearer {token}"} if token else None)
served = [m.model or "" for m in client.list().models]  # NAME:latest, then NAME:<task> for each task
print("served:", ", ".join(served))
MODEL = served[0].partition(":")[0]  # jina-embeddings-v5-text-small for the real model
notes = ["Shakshuka is eggs poached in a spiced tomato sauce.", "Oil a bike chain every few hundred km."]
docs = np.array(client.embed(model=f"{MODEL}:retrieval.passage", input=notes).embeddings)
query = np.array(client.embed(model=f"{MODEL}:retrieval.query", input="how do I look after my bike?").embeddings[0])
scores = docs @ query  # unit vectors: cosine = dot product
for score, note in sorted(zip(scores, notes), reverse=True):
    print(f"{score:.3f}  {note}")
