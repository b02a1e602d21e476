"""``torch.export.save`` for ATEN entries, without the self-test whose result it drops.

torch's ``ExportedProgramSerializer.serialize`` (2.13) calls
``canonicalize(serialized_ep, ...)`` under the comment "Test canonical form is well
defined" and discards what it returns: ``canonicalize`` deep-copies the serialized program
and sorts and renames the copy, so nothing the save writes depends on it. It is more than
half of the save's time (stories ATEN program: 0.9 of 1.6 s profiled), on the main thread
of every cold run with the cache. The cache saves with it replaced by the identity for the
call: the same bytes (tests/passes/cache/test_aten_save.py compares them with a plain
``torch.export.save``), without the copy. Nothing else in torch calls it.
"""

from __future__ import annotations

import io
from typing import Any

from pteflow.ir.replaced import replaced


def _as_is(ep: Any, constants: Any = None) -> Any:
    return ep


def save(ep: Any) -> bytes:
    """``torch.export.save(ep)``'s bytes, its canonical-form self-test skipped."""
    import torch
    from torch._export.serde import serialize as torch_serde

    buf = io.BytesIO()
    # (a torch without it: the name is added for the call, unused, and removed after)
    with replaced(torch_serde, "canonicalize", _as_is):
        torch.export.save(ep, buf)
    return buf.getvalue()
