"""Nix's base-32 and the store-path digest ldmatrix uses."""

from __future__ import annotations

import hashlib

ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"


def encode(data: bytes) -> str:
    """Nix base-32 (as in ``nix-hash --to-base32``): last 5-bit group first."""
    if not data:
        return ""
    n_chars = (len(data) * 8 - 1) // 5 + 1
    out = []
    for n in range(n_chars - 1, -1, -1):
        bit = n * 5
        i, j = divmod(bit, 8)
        c = data[i] >> j
        if i + 1 < len(data):
            c |= data[i + 1] << (8 - j)
        out.append(ALPHABET[c & 0x1F])
    return "".join(out)


def digest(*parts: str) -> str:
    """32 Nix base-32 chars: the first 20 bytes of sha256 over the NUL-joined parts."""
    h = hashlib.sha256("\0".join(parts).encode()).digest()
    return encode(h[:20])
