"""Where the cache lives and how large it may grow: the defaults, and sizes as users
write them (``--cache-size 10G``)."""

from __future__ import annotations

import os
from pathlib import Path

from pteflow.ir.errors import UserError

#: The cap on entries and the blobs they refer to (least recently used evicted over it).
DEFAULT_MAX_BYTES = 10 * 2**30


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/pteflow``, else ``~/.cache/pteflow``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pteflow"


def parse_size(text: str) -> int:
    """``'500M'``, ``'10G'``, ``'1024'`` -> bytes.

    Raises:
        UserError: not a size.
    """
    units = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    t = text.strip().upper().removesuffix("B")
    unit = t[-1:] if t[-1:] in units and t[-1:] else ""
    try:
        value = float(t[: -len(unit)] if unit else t)
    except ValueError:
        raise UserError(f"cache size {text!r} is not a size; use e.g. 500M or 10G") from None
    if value <= 0:
        raise UserError(f"cache size must be positive, got {text!r}")
    return int(value * units[unit])
