"""Facts the CoreML source passes establish (candidates for ``pteflow.ir.facts``).

Checked on the real program: at EAGER by module classes, at ATEN and later by the ops the
modules leave in the graph.
"""

from __future__ import annotations

from pteflow.ir import Fact
from pteflow.ir.facts import all_of, eager_classes, ops_present

SDPA_COREML = Fact(
    "sdpa.coreml",
    "attention is written for CoreML: coreml::sdpa (iOS 18's fused SDPA op) or, before "
    "iOS 18, SDPASimple's explicit matmul/softmax",
    all_of(
        eager_classes("SDPACoreML", "SDPASimple", absent=("SDPA",)),
        ops_present("coreml.sdpa", "coreml::sdpa", "softmax", include_delegated=True),
    ),
)
KV_CACHE_COREML = Fact(
    "kv_cache.coreml",
    "the KV cache is KVCacheCoreML: [B, H, S, D] buffers written with index_put "
    "(CoreML's slice_update)",
    all_of(eager_classes("KVCacheCoreML", absent=("KVCache",)), ops_present("index_put")),
)
