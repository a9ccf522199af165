"""The Qwen3 decoder of jina-embeddings-v5-text-small in MLX, with per-row LoRA adapters.

Follows mlx-lm's `models/qwen3.py` (same module names, so checkpoint keys load 1:1), but:
- returns the final-normed hidden state of each row's last real token (right padding + causal
  mask is exact for those positions, so no padding mask is needed);
- a `PrefixCache` lets many rows continue one shared prompt prefix, computed once (the reranker's
  system + instruction + query), instead of each row recomputing it;
- every projection is a `LoRALinear` (model/lora.py) that can add an unmerged LoRA term `s·B(A x)`,
  chosen per call (`adapter: int`) or per row (`adapter: mx.array[B]`), so one forward pass can mix
  tasks and the base stays shared (and quantizable) while adapters stay in full precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from mlx_jina.model.lora import AdapterChoice, LoRALinear

#: Most attention scores (floats) one SDPA call may hold; longer inputs attend in query blocks,
#: so a 32K-token text needs ~1 GB for scores instead of 64 GB.
ATTENTION_SCORE_BUDGET = 1 << 28
#: On the CPU backend, causal attention in 128-row query blocks skips the masked half of the
#: scores (MLX's CPU exp runs at ~47 M/s, so softmax dominates): measured 1.4-1.8x faster per
#: layer at 520-4096 tokens. Metal's fused kernel needs no such help.
CPU_QUERY_BLOCK = 128


@dataclass(frozen=True)
class ModelArgs:
    hidden_size: int
    num_hidden_layers: int
    intermediate_size: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    vocab_size: int
    rope_theta: float
    max_position_embeddings: int

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelArgs:
        """Read every hyper-parameter from config.json; refuse what this implementation does not do."""
        rope = config.get("rope_parameters") or {}  # transformers 5 nests rope_theta here
        theta = config.get("rope_theta", rope.get("rope_theta"))
        scaling = config.get("rope_scaling") or {k: v for k, v in rope.items() if k != "rope_theta"}
        problems = []
        if theta is None:
            problems.append("no rope_theta (top level or in rope_parameters)")
        if scaling and scaling.get("rope_type", scaling.get("type", "default")) != "default":
            problems.append(f"unsupported rope scaling {scaling}")
        if config.get("hidden_act", "silu") != "silu":
            problems.append(f"unsupported hidden_act {config['hidden_act']!r}")
        if config.get("attention_bias", False):
            problems.append("attention_bias=true is not a Qwen3 embedding checkpoint")
        if config.get("tie_word_embeddings") is False and config.get("lm_head"):
            problems.append("untied lm_head")
        sizes = ("hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads", "vocab_size",
                 "max_position_embeddings")  # 0 heads or a negative length would fail later, less clearly
        for key in sizes + tuple(k for k in ("num_key_value_heads", "head_dim") if config.get(k) is not None):
            value = config.get(key)
            if key in config and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                problems.append(f"{key} must be a positive integer, not {value!r}")
        if problems or theta is None:
            raise ValueError("config.json: " + "; ".join(problems))
        heads = config["num_attention_heads"]
        return cls(
            hidden_size=config["hidden_size"],
            num_hidden_layers=config["num_hidden_layers"],
            intermediate_size=config["intermediate_size"],
            num_attention_heads=heads,
            num_key_value_heads=config.get("num_key_value_heads", heads),
            head_dim=config.get("head_dim") or config["hidden_size"] // heads,
            rms_norm_eps=config["rms_norm_eps"],
            vocab_size=config["vocab_size"],
            rope_theta=float(theta),
            max_position_embeddings=config["max_position_embeddings"],
        )


def layer_projections(args: ModelArgs) -> dict[str, tuple[int, int]]:
    """The one projection-shape table: module path within a layer -> (in, out) features."""
    q, kv = args.num_attention_heads * args.head_dim, args.num_key_value_heads * args.head_dim
    h, i = args.hidden_size, args.intermediate_size
    return {"self_attn.q_proj": (h, q), "self_attn.k_proj": (h, kv), "self_attn.v_proj": (h, kv),
            "self_attn.o_proj": (q, h), "mlp.gate_proj": (h, i), "mlp.up_proj": (h, i), "mlp.down_proj": (i, h)}


def projection_shapes(args: ModelArgs) -> dict[str, tuple[int, int]]:
    """Full module path (e.g. "layers.3.self_attn.q_proj") -> (in, out) for every projection."""
    per_layer = layer_projections(args)
    return {f"layers.{n}.{m}": s for n in range(args.num_hidden_layers) for m, s in per_layer.items()}


class PrefixCache:
    """One layer's keys and values of a shared prompt prefix. The first call (a single row: the
    prefix) stores them; later calls (any batch of continuations) attend to them, broadcast to
    every row, positions offset by the prefix length. Nothing is stored from continuations."""

    def __init__(self) -> None:
        self.keys: mx.array | None = None  # [1, kv_heads, P, head_dim], after k_norm and RoPE
        self.values: mx.array | None = None

    @property
    def offset(self) -> int:
        return 0 if self.keys is None else self.keys.shape[2]

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        if self.keys is None or self.values is None:
            self.keys, self.values = keys, values
            return keys, values
        rows = keys.shape[0]
        past_k = mx.broadcast_to(self.keys, (rows, *self.keys.shape[1:]))
        past_v = mx.broadcast_to(self.values, (rows, *self.values.shape[1:]))
        return mx.concatenate([past_k, keys], axis=2), mx.concatenate([past_v, values], axis=2)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        d, h, kv = args.head_dim, args.num_attention_heads, args.num_key_value_heads
        self.n_heads, self.n_kv_heads, self.head_dim = h, kv, d
        self.scale = d**-0.5
        self.rope_theta = args.rope_theta
        self.q_proj = LoRALinear(args.hidden_size, h * d, bias=False)
        self.k_proj = LoRALinear(args.hidden_size, kv * d, bias=False)
        self.v_proj = LoRALinear(args.hidden_size, kv * d, bias=False)
        self.o_proj = LoRALinear(h * d, args.hidden_size, bias=False)
        self.q_norm = nn.RMSNorm(d, eps=args.rms_norm_eps)
        self.k_norm = nn.RMSNorm(d, eps=args.rms_norm_eps)

    def __call__(self, x: mx.array, adapter: AdapterChoice, cache: PrefixCache | None = None) -> mx.array:
        B, L, _ = x.shape
        offset = cache.offset if cache is not None else 0
        q = self.q_norm(self.q_proj(x, adapter).reshape(B, L, self.n_heads, -1))
        k = self.k_norm(self.k_proj(x, adapter).reshape(B, L, self.n_kv_heads, -1))
        v = self.v_proj(x, adapter).reshape(B, L, self.n_kv_heads, -1)
        q, k, v = (t.transpose(0, 2, 1, 3) for t in (q, k, v))  # [B, heads, L, D]
        q = mx.fast.rope(q, self.head_dim, traditional=False, base=self.rope_theta, scale=1.0, offset=offset)
        k = mx.fast.rope(k, self.head_dim, traditional=False, base=self.rope_theta, scale=1.0, offset=offset)
        if cache is not None:
            k, v = cache.update_and_fetch(k, v)
        o = self.attend(q, k, v)
        return self.o_proj(o.transpose(0, 2, 1, 3).reshape(B, L, -1), adapter)

    def attend(self, q: mx.array, k: mx.array, v: mx.array) -> mx.array:
        """Causal SDPA, in query blocks when the full score matrix would be too large (or on the
        CPU, see CPU_QUERY_BLOCK). Keys may start with `past` cached prefix positions. MLX's
        "causal" mask aligns the last query with the last key, so block [s, e) over keys
        [0, past + e) is exactly rows s..e-1 of the full causal attention."""
        B, H, L, _ = q.shape
        past = k.shape[2] - L
        block = max(128, ATTENTION_SCORE_BUDGET // (B * H * (L + past)))
        if mx.default_device() == mx.cpu:
            block = min(block, CPU_QUERY_BLOCK)
        if L <= block:
            return mx.fast.scaled_dot_product_attention(q, k, v, scale=self.scale, mask="causal" if L > 1 else None)
        parts = []
        for start in range(0, L, block):
            end = min(start + block, L)
            parts.append(mx.fast.scaled_dot_product_attention(
                q[:, :, start:end], k[:, :, :past + end], v[:, :, :past + end], scale=self.scale, mask="causal"))
        return mx.concatenate(parts, axis=2)


class MLP(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.gate_proj = LoRALinear(args.hidden_size, args.intermediate_size, bias=False)
        self.up_proj = LoRALinear(args.hidden_size, args.intermediate_size, bias=False)
        self.down_proj = LoRALinear(args.intermediate_size, args.hidden_size, bias=False)

    def __call__(self, x: mx.array, adapter: AdapterChoice) -> mx.array:
        gated = nn.silu(self.gate_proj(x, adapter)) * self.up_proj(x, adapter)
        return self.down_proj(gated, adapter)


class DecoderLayer(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.self_attn = Attention(args)
        self.mlp = MLP(args)
        self.input_layernorm = nn.RMSNorm(args.hidden_size, eps=args.rms_norm_eps)
        self.post_attention_layernorm = nn.RMSNorm(args.hidden_size, eps=args.rms_norm_eps)

    def __call__(self, x: mx.array, adapter: AdapterChoice, cache: PrefixCache | None = None) -> mx.array:
        h = x + self.self_attn(self.input_layernorm(x), adapter, cache)
        return h + self.mlp(self.post_attention_layernorm(h), adapter)


class Qwen3Encoder(nn.Module):
    """Token ids -> pooled embedding (final RMSNorm of each row's last real token)."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.embed_tokens = nn.Embedding(args.vocab_size, args.hidden_size)
        self.layers = [DecoderLayer(args) for _ in range(args.num_hidden_layers)]
        self.norm = nn.RMSNorm(args.hidden_size, eps=args.rms_norm_eps)

    def __call__(self, ids: mx.array, lengths: mx.array, adapter: AdapterChoice,
                 cache: list[PrefixCache] | None = None) -> mx.array:
        """ids: int32 [B, L], right-padded; lengths: int32 [B] real lengths -> [B, hidden].
        cache: one PrefixCache per layer; empty, this call's single row fills it; filled, every
        row continues after that prefix (ids and lengths then count the continuation only)."""
        h = self.embed_tokens(ids)
        for i, layer in enumerate(self.layers):
            h = layer(h, adapter, cache[i] if cache is not None else None)
        last = h[mx.arange(ids.shape[0]), lengths - 1]  # RMSNorm is per token: pool, then norm
        return self.norm(last)
