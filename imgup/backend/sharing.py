"""Share links: tokens that name an image and the moment they expire, signed with the stack's
share secret (pure functions of the standard library).

A token is ``<imageId>.<expires>.<mac>``: ``expires`` in whole seconds since the epoch, ``mac``
the HMAC-SHA256 of both under the secret, base64url without padding. ``GET /share/{token}``
recomputes the MAC and compares it in constant time, so a token cannot be forged or changed
(another id, a later expiry) without the secret; the secret lives in Secrets Manager, not in
any credentials that expire, so a link lives exactly as long as it says.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

__all__ = ["MAX_TOKEN_CHARS", "Share", "make_token", "read_token"]

_TOKEN_RE = re.compile(
    r"(?P<id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
    r"\.(?P<expires>[1-9][0-9]{0,11})\.(?P<mac>[A-Za-z0-9_-]{43})"
)
MAX_TOKEN_CHARS = 36 + 1 + 12 + 1 + 43
_CONTEXT = b"imgup share v1\n"


@dataclass(frozen=True)
class Share:
    """What a valid token says: the image and when the link stops working (epoch seconds)."""

    image_id: str
    expires: int


def _mac(secret: bytes, image_id: str, expires: int) -> str:
    message = _CONTEXT + f"{image_id}\n{expires}".encode("ascii")
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def make_token(secret: bytes, image_id: str, expires: int) -> str:
    """A token for ``image_id`` that stops working at ``expires`` (epoch seconds)."""
    if not secret:
        raise ValueError("a share secret is needed")
    return f"{image_id}.{expires}.{_mac(secret, image_id, expires)}"


def read_token(secret: bytes, token: object) -> Share | None:
    """The share a token names when it was made with ``secret``; None for anything else
    (garbled, truncated, another id or expiry than was signed). Expiry is the caller's check."""
    if not secret or not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        return None
    found = _TOKEN_RE.fullmatch(token)
    if found is None:
        return None
    image_id, expires = found["id"], int(found["expires"])
    if not hmac.compare_digest(found["mac"], _mac(secret, image_id, expires)):
        return None
    return Share(image_id, expires)
