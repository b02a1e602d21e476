"""The user's secret key, and HMACs made with it (cache entries, reproducers).

Cache payloads are pickles and reproducers are ``torch.load(weights_only=False)``:
whoever can write them can run code in the process that reads them. A checksum proves
nothing about who wrote the bytes; an HMAC with a key only this user can read does.

The key lives in ``$XDG_CONFIG_HOME/pteflow/secret.key`` (else
``~/.config/pteflow/secret.key``), created on first use with mode 0600 in a 0700
directory. Not in the cache directory: a cache directory copied from elsewhere (or a
shared one) would bring its own key along, and entries signed with it would verify.
One key per user, so the reproducers a run writes verify wherever its cache lives.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import stat
import tempfile
from pathlib import Path

from pteflow.ir.errors import UserError

KEY_BYTES = 32


def key_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "pteflow" / "secret.key"


def user_key() -> bytes:
    """The key, created on first use (0600). Raises UserError if it is not private."""
    path = key_path()
    if not path.exists():
        _create(path)
    try:
        st = path.stat()
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read the pteflow key {path} ({e.strerror})") from None
    if hasattr(os, "getuid") and (st.st_uid != os.getuid() or st.st_mode & 0o077):
        raise UserError(
            f"the pteflow key {path} is not private to you (mode "
            f"{stat.S_IMODE(st.st_mode):o}); delete it (a new one is made) or chmod 600 it"
        )
    if len(data) < KEY_BYTES:
        raise UserError(f"the pteflow key {path} is damaged; delete it (a new one is made)")
    return data


def _create(path: Path) -> None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".key.")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(KEY_BYTES))
            with contextlib.suppress(FileExistsError):  # another process made it first
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    except OSError as e:
        raise UserError(
            f"cannot create the pteflow key {path} ({e.strerror}); set XDG_CONFIG_HOME "
            "to a directory you can write"
        ) from None


def sign(key: bytes, *parts: bytes) -> bytes:
    """HMAC-SHA256 over ``parts`` (each length-prefixed, so no two splits collide)."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        mac.update(len(part).to_bytes(8, "big"))
        mac.update(part)
    return mac.digest()


def verify(key: bytes, mac: bytes, *parts: bytes) -> bool:
    return hmac.compare_digest(mac, sign(key, *parts))
