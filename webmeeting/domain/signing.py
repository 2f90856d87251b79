"""HMAC request signing of the PBX API (contract: "Signed requests").

canonical = METHOD \\n PATH_WITH_QUERY \\n X-Timestamp \\n X-Nonce \\n hex(sha256(body))
signature = lowercase hex HMAC-SHA256(api_secret, canonical)

The same scheme signs the platform's own calls to the PBX.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

NONCE_RE = re.compile(r"^[\x21-\x7e]{16,128}$")  # printable ASCII, no spaces
SIGNATURE_RE = re.compile(r"^[0-9a-f]{64}$")


def canonical(method: str, path_with_query: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    body_hash = hashlib.sha256(body).hexdigest()
    return "\n".join([method.upper(), path_with_query, timestamp, nonce, body_hash]).encode()


def sign(secret: bytes, method: str, path_with_query: str, timestamp: str, nonce: str, body: bytes) -> str:
    return hmac.new(secret, canonical(method, path_with_query, timestamp, nonce, body), hashlib.sha256).hexdigest()


def signed_headers(pbx_id: str, secret: bytes, method: str, path_with_query: str, body: bytes, now_s: int) -> dict[str, str]:
    """Headers for a signed request at unix time ``now_s``."""
    nonce = secrets.token_urlsafe(18)
    ts = str(now_s)
    return {
        "X-PBX-Id": pbx_id,
        "X-Timestamp": ts,
        "X-Nonce": nonce,
        "X-Signature": sign(secret, method, path_with_query, ts, nonce, body),
    }


@dataclass(frozen=True)
class SignedHeaders:
    pbx_id: str
    timestamp: int
    nonce: str
    signature: str


class SignatureError(ValueError):
    """Why a request's signature headers are unacceptable (message is safe to return)."""


def parse_headers(headers: dict[str, str]) -> SignedHeaders:
    pbx_id = headers.get("x-pbx-id", "")
    ts = headers.get("x-timestamp", "")
    nonce = headers.get("x-nonce", "")
    sig = headers.get("x-signature", "")
    if not (pbx_id and ts and nonce and sig):
        raise SignatureError("X-PBX-Id, X-Timestamp, X-Nonce and X-Signature are required")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", pbx_id):
        raise SignatureError("unknown pbx")
    if not re.fullmatch(r"[0-9]{1,12}", ts):
        raise SignatureError("X-Timestamp must be unix seconds")
    if not NONCE_RE.match(nonce):
        raise SignatureError("X-Nonce must be 16-128 printable ASCII characters")
    if not SIGNATURE_RE.match(sig):
        raise SignatureError("X-Signature must be 64 lowercase hex characters")
    return SignedHeaders(pbx_id, int(ts), nonce, sig)


def check(
    parsed: SignedHeaders,
    secret: bytes,
    method: str,
    path_with_query: str,
    body: bytes,
    now_s: int,
    window_s: int,
) -> None:
    """Raise ``SignatureError`` unless the signature matches and the timestamp is fresh."""
    if abs(now_s - parsed.timestamp) > window_s:
        raise SignatureError("stale timestamp")
    expected = sign(secret, method, path_with_query, str(parsed.timestamp), parsed.nonce, body)
    if not hmac.compare_digest(expected, parsed.signature):
        raise SignatureError("signature mismatch")
