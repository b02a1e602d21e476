"""Facts the CoreML source passes establish (candidates for ``pteflow.ir.facts``).

Checked on the real program: at EAGER by module classes, at ATEN and later by the ops the
modules leave in the graph.
"""

from __future__ import annotations

from pteflow.ir import Fact, Level, Program
from pteflow.ir.facts import Checker, _all_of, ops_present


def _eager_classes(*names: str, absent: tuple[str, ...] = ()) -> Checker:
    """At EAGER: some submodule's class is one of ``names`` and none is one of ``absent``."""

    def check(program: Program) -> str | None:
        if program.level != Level.EAGER:
            return None
        seen = {type(sub).__name__ for m in program.modules().values() for sub in m.modules()}
        left = sorted(seen & set(absent))
        if left:
            return f"submodules of class {', '.join(left)} are still there"
        if seen & set(names):
            return None
        return f"no submodule of class {' or '.join(names)}"

    return check


SDPA_COREML = Fact(
    "sdpa.coreml",
    "attention is written for CoreML: coreml::sdpa (iOS 18's fused SDPA op) or, before "
    "iOS 18, SDPASimple's explicit matmul/softmax",
    _all_of(
        _eager_classes("SDPACoreML", "SDPASimple", absent=("SDPA",)),
        ops_present("coreml.sdpa", "coreml::sdpa", "softmax", include_delegated=True),
    ),
)
KV_CACHE_COREML = Fact(
    "kv_cache.coreml",
    "the KV cache is KVCacheCoreML: [B, H, S, D] buffers written with index_put "
    "(CoreML's slice_update)",
    _all_of(_eager_classes("KVCacheCoreML", absent=("KVCache",)), ops_present("index_put")),
)
