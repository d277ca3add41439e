"""Passwords and tokens. Passwords are stored as scrypt hashes; tokens are
random and only their SHA-256 is stored, so a leaked database opens nothing."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

_N, _R, _P = 2**14, 8, 1


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(got.hex(), digest)


def new_token() -> str:
    return secrets.token_urlsafe(24)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_id(prefix: str) -> str:
    """Unguessable ids: a forged conversation id cannot hit a real one by luck.

    The time in front (milliseconds, base 36) keeps the ids of the chats open
    now next to each other in the database's indexes, so a group commit
    touches few pages; the 62 random bits behind it are what make it safe."""
    stamp = _base36(time.time_ns() // 1_000_000, 8)
    return f"{prefix}-{stamp}{_base36(secrets.randbits(62), 12)}"


def _base36(n: int, width: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = []
    for _ in range(width):
        n, r = divmod(n, 36)
        out.append(digits[r])
    return "".join(reversed(out))
