"""Single-head attention modules for ExecuTorch's Llama (imported only by split-mha-to-sha).

``AttentionSHA`` computes exactly what ``AttentionMHA`` (``examples/models/llama/attention.py``)
computes with a KV cache, one head at a time: per-head q/k/v projections (row slices of the
fused weights), RoPE per head, a per-KV-head cache, per-head scores, mask, softmax and
weighted sum, and the heads concatenated in head order before ``wo``. It returns
``(output, None)`` as ``AttentionMHA`` does; ExecuTorch 1.5.1's own
``source_transformation/attention.AttentionSHA`` returns a bare tensor, which is what makes
``TransformerBlock`` fail with "not enough values to unpack", and it also rotates with a
different RoPE layout (real halves, not interleaved pairs), so its outputs differ from the
model's even once the return value is fixed.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


class KVCacheSHA(nn.Module):
    """One cache per KV head, ``[B, max_context_len, head_dim]`` each.

    ``past_k_caches_{i}`` / ``past_v_caches_{i}`` are written at ``input_pos`` with
    ``index_put_`` (static shapes) or ``index_copy_`` from ``input_pos[0]`` (dynamic shapes),
    as ``KVCache.update`` does for its fused ``[B, H, S, D]`` buffers.
    """

    def __init__(
        self,
        max_batch_size: int,
        max_context_length: int,
        n_heads: int,
        head_dim: int,
        enable_dynamic_shape: bool,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        self.max_context_length = max_context_length
        self.n_heads = n_heads
        self.head_dim = head_dim
        self.enable_dynamic_shape = enable_dynamic_shape
        shape = (max_batch_size, max_context_length, head_dim)
        for i in range(n_heads):
            self.register_buffer(f"past_k_caches_{i}", torch.zeros(shape, dtype=dtype))
            self.register_buffer(f"past_v_caches_{i}", torch.zeros(shape, dtype=dtype))

    def caches(self, head: int) -> tuple[torch.Tensor, torch.Tensor]:
        k: torch.Tensor = getattr(self, f"past_k_caches_{head}")
        v: torch.Tensor = getattr(self, f"past_v_caches_{head}")
        return k, v

    def update(
        self, input_pos: torch.Tensor, k_val: torch.Tensor, v_val: torch.Tensor, head: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write ``k_val``/``v_val`` (``[B, S, D]``) for ``head``; return its whole caches."""
        k_cache, v_cache = self.caches(head)
        if self.enable_dynamic_shape:
            start_pos = input_pos[0].item()
            torch._check_is_size(start_pos)
            torch._check(start_pos < self.max_context_length)
            indices = torch.arange(k_val.size(1), device=k_cache.device) + start_pos
            k_cache.index_copy_(1, indices, k_val)
            v_cache.index_copy_(1, indices, v_val)
            return k_cache, v_cache
        k_out = torch.ops.aten.index_put_(k_cache, [None, input_pos], k_val)
        v_out = torch.ops.aten.index_put_(v_cache, [None, input_pos], v_val)
        return k_out, v_out


class AttentionSHA(nn.Module):
    """``AttentionMHA`` with a KV cache, computed head by head (see the module docstring)."""

    def __init__(self, mha: Any):
        super().__init__()
        self.n_heads = mha.n_heads
        self.n_kv_heads = mha.n_kv_heads
        self.n_rep = mha.n_rep
        self.head_dim = mha.head_dim
        self.dim = mha.dim
        self.max_context_len = mha.max_context_len
        self.enable_dynamic_shape = mha.enable_dynamic_shape
        self.layer_id = mha.layer_id
        self.use_kv_cache = True
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.rope = mha.rope
        self.wo = mha.wo
        self.wq = _split_linear(mha.wq, self.n_heads, self.head_dim)
        self.wk = _split_linear(mha.wk, self.n_kv_heads, self.head_dim)
        self.wv = _split_linear(mha.wv, self.n_kv_heads, self.head_dim)
        self.register_buffer("mask", mha.mask, persistent=False)
        cache = mha.kv_cache
        k_fused, v_fused = _fused_cache(cache)
        self.kv_cache = KVCacheSHA(
            k_fused.shape[0],
            self.max_context_len,
            self.n_kv_heads,
            self.head_dim,
            self.enable_dynamic_shape,
            dtype=k_fused.dtype,
        )
        with torch.no_grad():  # carry the cache's contents over: equal mid-sequence too
            for j in range(self.n_kv_heads):
                k_j, v_j = self.kv_cache.caches(j)
                k_j.copy_(k_fused[:, j])
                v_j.copy_(v_fused[:, j])

    def _rotate(
        self, x: torch.Tensor, freqs_cos: torch.Tensor, freqs_sin: torch.Tensor
    ) -> torch.Tensor:
        # The model's own RoPE, on one head ([B, S, 1, D]); RoPE is per element pair, so a
        # head slice rotates exactly as inside the fused tensor. The unused second output
        # is dead code that export removes.
        rotated, _ = self.rope.forward(x, x, freqs_cos, freqs_sin)
        return rotated

    def forward(
        self, x: torch.Tensor, freqs_cos: torch.Tensor, freqs_sin: torch.Tensor, **kwargs: Any
    ) -> tuple[torch.Tensor, None]:
        input_pos = kwargs.get("input_pos")
        assert input_pos is not None, "AttentionSHA runs with a KV cache: pass input_pos"
        bsz, seqlen, _ = x.shape
        d = self.head_dim

        qs = [
            self._rotate(wq(x).view(bsz, seqlen, 1, d), freqs_cos, freqs_sin).reshape(
                bsz, seqlen, d
            )
            for wq in self.wq
        ]
        ks, vs = [], []
        for j in range(self.n_kv_heads):
            k = self._rotate(self.wk[j](x).view(bsz, seqlen, 1, d), freqs_cos, freqs_sin)
            k_all, v_all = self.kv_cache.update(
                input_pos, k.reshape(bsz, seqlen, d), self.wv[j](x), j
            )
            ks.append(k_all.transpose(1, 2))
            vs.append(v_all)

        causal = self.get_buffer("mask")
        if self.enable_dynamic_shape:
            start_pos = input_pos[-1].item()
            torch._check_is_size(start_pos)
            torch._check(start_pos < self.max_context_len)
            mask = causal.narrow(0, start_pos, seqlen)
        else:
            mask = causal[input_pos]
        if mask.dtype == torch.bool:  # the model's own tril mask: make it additive once
            mask = torch.zeros(mask.shape, dtype=x.dtype).masked_fill(~mask, float("-inf"))

        heads = []
        for i, q in enumerate(qs):
            # bmm, not matmul: with one head, matmul's decomposition folds size-1 dims into
            # unsqueeze/permute ops that QNN's ConvertBmmToMatmul refuses as "a new pattern"
            j = i // self.n_rep
            scores = torch.bmm(q, ks[j]) * self.scale + mask
            heads.append(torch.bmm(torch.softmax(scores, dim=-1), vs[j]))
        return self.wo(torch.cat(heads, dim=-1)), None


def _split_linear(linear: Any, n: int, head_dim: int) -> nn.ModuleList:
    """``n`` linears, the i-th computing output rows ``[i*head_dim, (i+1)*head_dim)``."""
    out = nn.ModuleList()
    has_bias = linear.bias is not None
    for i in range(n):
        rows = slice(i * head_dim, (i + 1) * head_dim)
        head = nn.Linear(
            linear.in_features,
            head_dim,
            bias=has_bias,
            device=linear.weight.device,
            dtype=linear.weight.dtype,
        )
        with torch.no_grad():
            head.weight.copy_(linear.weight[rows])
            if has_bias:
                head.bias.copy_(linear.bias[rows])
        out.append(head)
    return out


def _fused_cache(cache: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The cache's K and V as ``[B, H, S, D]`` (KVCache layout; KVCacheSimple is transposed)."""
    if hasattr(cache, "k_cache"):
        return cache.k_cache, cache.v_cache
    return cache.past_k_caches.transpose(1, 2), cache.past_v_caches.transpose(1, 2)


_CACHES = ("KVCache", "KVCacheSimple")
_SDPAS = ("SDPA", "SDPAFlex")


def unsupported(mha: Any) -> str | None:
    """Why ``mha`` cannot be split exactly, or None."""
    if not getattr(mha, "use_kv_cache", False):
        return "it has no KV cache (split-mha-to-sha splits KV-cache attention, as QNN runs it)"
    for flag, what in (
        ("use_qk_norm", "QK norm"),
        ("use_q_gate", "a query gate"),
        ("use_attn_o_gate", "an output gate"),
        ("use_attn_o_norm", "an output norm"),
    ):
        if getattr(mha, flag, False):
            return f"it uses {what}"
    if getattr(mha, "num_kv_shared_layers", 0):
        return "it shares KV across layers (YOCO)"
    cache = getattr(mha, "kv_cache", None)
    if type(cache).__name__ not in _CACHES:
        return (
            f"its KV cache is a {type(cache).__name__}, not one of {', '.join(_CACHES)} "
            "(run split-mha-to-sha instead of the custom/quantized KV-cache passes)"
        )
    if getattr(cache, "is_ring_buffer", False):
        return "its KV cache is a ring buffer"
    sdpa = getattr(mha, "SDPA", None)
    if type(sdpa).__name__ not in _SDPAS:
        return f"its attention is a {type(sdpa).__name__}, not one of {', '.join(_SDPAS)}"
    mask = getattr(mha, "mask", None)
    if not isinstance(mask, torch.Tensor):
        return "it has no causal mask buffer"
    if type(sdpa).__name__ == "SDPAFlex" and mask.dtype == torch.bool:
        return (
            "its SDPAFlex adds a boolean mask (1/0, not 0/-inf); run qnn-replace-causal-mask "
            "with it"
        )
    return None
