"""Process-wide caches upstream keeps that pin whole graphs, and emptying them.

Lowering leaves references in places that live as long as the process, and through them
every partitioned graph stays alive with every delegate lowered into it (the weights'
XNNPACK payloads): at SmolLM2-135M's shapes, the half-gigabyte a released program should
give back (found by walking the referrers of a payload from a module's globals):

* ``executorch.exir.backend.utils.is_same_node``: an unbounded ``lru_cache`` keyed by
  nodes;
* XNNPACK's partitioner configs: each holds a module-level ``WhyNoPartition`` that keeps
  the last node it was told about;
* torch's ``ShapeEnv`` methods cached with ``lru_cache`` keep their recent ``ShapeEnv``s,
  whose fake-tensor dispatch caches are keyed by the operands of
  ``executorch_call_delegate``: the lowered modules themselves. A ``ShapeEnv`` also lives
  as long as any symbolic size made in it (C++ ``SymInt``s hold its ``SymNode``s, out of
  the collector's sight), so ``deep=True`` empties the dispatch cache of every live one.

Emptying them costs only recomputation; nothing here changes what is computed.
"""

from __future__ import annotations

import sys


def forget_graphs_upstream_keeps(*, deep: bool = False) -> None:
    """Empty the caches above (those of packages not imported are left alone); ``deep``:
    also find every live ``ShapeEnv`` (a walk over the collector's objects, ~0.1 s per
    million) and empty its dispatch cache."""
    utils = sys.modules.get("executorch.exir.backend.utils")
    if utils is not None:
        utils.is_same_node.cache_clear()
        why_type = utils.WhyNoPartition
        for name, module in list(sys.modules.items()):
            if name.startswith("executorch.backends.") and module is not None:
                for value in list(vars(module).values()):
                    if isinstance(value, why_type):
                        value.node = None
    shapes = sys.modules.get("torch.fx.experimental.symbolic_shapes")
    if shapes is not None:
        for value in list(vars(shapes.ShapeEnv).values()):
            clear = getattr(value, "cache_clear", None)
            if callable(clear):
                clear()
        if deep:
            import gc

            for obj in gc.get_objects():
                if type(obj) is shapes.ShapeEnv:
                    cache = getattr(obj, "fake_tensor_cache", None)
                    if isinstance(cache, dict):
                        cache.clear()
    fake = sys.modules.get("torch._subclasses.fake_tensor")
    if fake is not None:
        fake.FakeTensorMode.cache_clear()
