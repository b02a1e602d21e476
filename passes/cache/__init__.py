"""A content-addressed cache of pass results, so a re-run starts after its longest cached prefix.

The manager's interface is ``PassCache.session(ordered, program)`` and the
``CacheSession`` it returns (``session.py``). The parts:

* ``keys.py``     the chain of keys over the scheduled passes (nothing run or loaded);
* ``codec.py``    Program <-> payload bytes per level, repairing what serde loses;
* ``store.py``    the directory: authenticated entries, eviction, info, clear;
* ``input_key.py`` the first key: the input's hash, weights hashed beside the first passes;
* ``auth.py``     the user's secret key and HMACs (entries here, reproducers in driver/);
* ``session.py``  one run: resume point, staged writes, dropping what a failure condemns.

A restored entry is indistinguishable from a recomputation: what a pass's output depends
on beyond its input is an option, so in its key (to-edge's ``keep_whole_for``, which the
planner sets to the partitioners scheduled after it) and what the output holds beyond
serde's bytes is in the entry (to-edge's kept-whole ops, in each EDGE program's
verifier). Nothing is unpickled before its entry is authenticated as written by this
user, for this key.
"""

from .auth import key_path, user_key
from .keys import chain_keys, pass_key
from .session import CacheSession
from .settings import DEFAULT_MAX_BYTES, default_cache_dir, parse_size
from .store import LAST_RUN, MAGIC, CacheInfo, CacheWarning, CorruptEntry, PassCache

__all__ = [
    "DEFAULT_MAX_BYTES",
    "LAST_RUN",
    "MAGIC",
    "CacheInfo",
    "CacheSession",
    "CacheWarning",
    "CorruptEntry",
    "PassCache",
    "chain_keys",
    "default_cache_dir",
    "key_path",
    "parse_size",
    "pass_key",
    "user_key",
]
