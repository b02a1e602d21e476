"""The fact catalogue: every backend-neutral fact, importable from here.

The Fact type and the checker builders are in ``fact.py``; the facts by topic in
``facts_model.py`` (KV cache, attention, masks, norms, dtype), ``facts_quant.py``
(quantization and where quantized linears may run) and ``facts_linear.py``
(``linear.canonical``); this module re-exports them all. Backend facts live with their
backend (``pteflow.backends.<name>.facts``); a fact more than one backend uses belongs here.
"""

from __future__ import annotations

# re-exported: callers import the catalogue from here
from .fact import (  # noqa: F401
    Checker,
    Fact,
    _eager_module_named,
    _has_delegate,
    all_of,
    delegated,
    eager_classes,
    ops_present,
)
from .facts_linear import LINEAR_CANONICAL, check_linear_canonical  # noqa: F401
from .facts_model import (  # noqa: F401
    DTYPE_OVERRIDDEN,
    KV_CACHE,
    KV_CACHE_CUSTOM,
    KV_CACHE_QUANTIZED,
    MASK_ADDITIVE,
    RMSNORM_NATIVE,
    SDPA_CUSTOM,
    SDPA_QUANTIZED,
)
from .facts_quant import (  # noqa: F401
    EMBEDDING_QUANTIZED,
    PT2E_CALIBRATED,
    PT2E_NO_OBSERVERS,
    PT2E_OBSERVED,
    QUANTIZATION,
    QUANTIZED_8DA4W,
    QUANTIZED_INT8_WEIGHT,
    QUANTIZED_PT2E,
    TORCHAO_LINEARS_DELEGATED,
)
from .views import op_name  # noqa: F401

DELEGATED = Fact(
    "delegated", "some of the graph is lowered to a backend delegate", _has_delegate(None)
)
EDGE_IR_RELAXED = Fact(
    "edge.ir-relaxed",
    "the edge program was built with _check_ir_validity=False, so non-core ops are legal",
)
CONST_PROPAGATED = Fact(
    "const.propagated",
    "constants have been folded (quant fusion and constant propagation ran)",
)
