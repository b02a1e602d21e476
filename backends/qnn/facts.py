"""Facts the QNN source passes establish (candidates for ``pteflow.ir.facts``).

Each checker verifies the fact on the real program: at EAGER by the module classes, at
ATEN and later by the ops, where the fact leaves a trace in the graph.
"""

from __future__ import annotations

from pteflow.ir import Fact
from pteflow.ir.facts import all_of, eager_classes, ops_present

KV_CACHE_SIMPLE = Fact(
    "kv_cache.simple",
    "the KV cache is QNN's KVCacheSimple: [B, S, H, D] buffers written with index_put",
    all_of(eager_classes("KVCacheSimple", absent=("KVCache",)), ops_present("index_put")),
)
SDPA_FLEX = Fact(
    "sdpa.flex",
    "attention is QNN's SDPAFlex: explicit matmul, additive mask, softmax (no fused SDPA op)",
    eager_classes("SDPAFlex", absent=("SDPA",)),
)
ATTENTION_SHA = Fact(
    "attention.sha",
    "multi-head attention is split into single-head attention: per-head projections, "
    "per-head KV caches, per-head softmax",
    eager_classes("AttentionSHA", absent=("AttentionMHA",)),
)
LINEAR_CONV2D = Fact(
    "linear.conv2d",
    "linear layers are 1x1 conv2d (the form QNN HTP runs fastest)",
    all_of(eager_classes("Conv2D", absent=("Linear",)), ops_present("conv2d", "convolution")),
)
