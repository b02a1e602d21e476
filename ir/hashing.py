"""A structural hash of a Program: equal graphs (or module trees) hash equal.

One function, so it can be unified with a content hash (structure + weights)
later. It hashes what ``views.dump`` shows, minus the facts line: at ATEN and
later the graph of every method and delegate (ops, arguments, node types); at
EAGER the module tree plus every parameter's and buffer's name, shape and
dtype. Weight *values* are not hashed.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from .levels import Level

if TYPE_CHECKING:
    from .program import Program


def structural_hash(program: Program) -> str:
    """The sha256 (hex) of the program's structure, independent of its facts."""
    from . import views

    text = "\n".join(
        line for line in views.dump(program).splitlines() if not line.startswith("# facts:")
    )
    h = hashlib.sha256(text.encode())
    if program.level == Level.EAGER:
        for method, module in program.modules().items():
            for name, t in [*module.named_parameters(), *module.named_buffers()]:
                h.update(f"{method}.{name}:{t.dtype}{list(t.shape)}\n".encode())
    return h.hexdigest()
