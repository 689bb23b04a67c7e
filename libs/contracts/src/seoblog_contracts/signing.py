"""Event signatures: HMAC-SHA256 over the exact message body, carried in one header, so
every consumer can refuse events that a holder of the shared key did not publish."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "Seoblog-Signature"
_SCHEME = "v1="


def sign(key: bytes, body: bytes) -> str:
    """The header value for `body`: `v1=<hex HMAC-SHA256(key, body)>`."""
    return _SCHEME + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify(key: bytes, body: bytes, signature: str | None) -> str | None:
    """None when `signature` is right for `body`, else why not: 'unsigned' or 'bad_signature'."""
    if not signature:
        return "unsigned"
    if not hmac.compare_digest(sign(key, body).encode(), signature.strip().encode()):
        return "bad_signature"
    return None
