"""Cache keys: a chain over the scheduled passes, computed without running or loading.

    key_0 = the input's structure and weights' digests (``input_key.py``)
    key_k = sha256(key_{k-1}, pass class, options, source_hash(pass class),
                   versions of torch/executorch/torchao/pteflow)

``source_hash`` covers the module defining the pass and every own-code module it reaches
(helpers, base classes, pteflow's ir), read from disk each time: an edited pass misses.
A pass's result depends on its input and options only: what to-edge keeps whole is its
``keep_whole_for`` option, which the planner sets (``pteflow.passes.partition.keep_whole``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from pteflow.ir import hashing

from ..base import Pass


def pass_key(previous: str, p: Pass) -> str:
    """The chain key of ``p`` run on the program keyed ``previous``."""
    cls = type(p)
    parts = (
        previous,
        f"{cls.__module__}.{cls.__qualname__}",
        hashing.canonical(p.options()),
        hashing.source_hash(cls),
        hashing.versions(),
    )
    return hashlib.sha256(hashing.canonical(parts).encode()).hexdigest()


def chain_keys(
    first: str, ordered: Sequence[Pass], note: Callable[[str], None] = lambda _m: None
) -> list[str | None]:
    """The chain key of each pass of ``ordered`` run on the program keyed ``first``; None
    from the first pass the cache must not store (policy, or a pass it cannot key: ``note``
    says why) on."""
    from ..policy import not_cacheable_because

    keys: list[str | None] = [None] * len(ordered)
    key = first
    for rank, p in enumerate(ordered):
        if not_cacheable_because(p):  # policy.Uncacheable: nothing from here on
            break
        try:
            key = pass_key(key, p)
        except Exception as e:
            note(f"{p.name}: not cacheable ({e})")
            break
        keys[rank] = key
    return keys
