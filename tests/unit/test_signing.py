import hashlib

import pytest

from webmeeting.domain import signing

SECRET = b"secret"


def test_canonical_is_the_contract_layout() -> None:
    c = signing.canonical("put", "/api/pbx/v1/sync", "100", "nonce-nonce-nonce", b"{}")
    assert c == b"PUT\n/api/pbx/v1/sync\n100\nnonce-nonce-nonce\n" + hashlib.sha256(b"{}").hexdigest().encode()


def test_empty_body_hashes_as_the_empty_string() -> None:
    assert signing.canonical("GET", "/x", "1", "n" * 16, b"").endswith(hashlib.sha256(b"").hexdigest().encode())


def _parsed(ts: int, body: bytes = b"{}") -> signing.SignedHeaders:
    headers = {k.lower(): v for k, v in signing.signed_headers("pbx1", SECRET, "PUT", "/p", body, ts).items()}
    return signing.parse_headers(headers)


def test_check_accepts_a_fresh_matching_signature_at_both_window_edges() -> None:
    for now in (1000 - 300, 1000, 1000 + 300):
        signing.check(_parsed(1000), SECRET, "PUT", "/p", b"{}", now, 300)


@pytest.mark.parametrize("now", [1000 - 301, 1000 + 301])
def test_check_rejects_stale_timestamps(now: int) -> None:
    with pytest.raises(signing.SignatureError, match="stale"):
        signing.check(_parsed(1000), SECRET, "PUT", "/p", b"{}", now, 300)


@pytest.mark.parametrize(
    ("secret", "method", "path", "body"),
    [(b"other", "PUT", "/p", b"{}"), (SECRET, "POST", "/p", b"{}"), (SECRET, "PUT", "/q", b"{}"), (SECRET, "PUT", "/p", b"{ }")],
)
def test_check_rejects_any_changed_part(secret: bytes, method: str, path: str, body: bytes) -> None:
    with pytest.raises(signing.SignatureError, match="mismatch"):
        signing.check(_parsed(1000), secret, method, path, body, 1000, 300)


@pytest.mark.parametrize(
    "change",
    [{"x-nonce": "short"}, {"x-timestamp": "12.5"}, {"x-signature": "ABC"}, {"x-pbx-id": ""}, {"x-nonce": "has space in it!!"}],
)
def test_parse_rejects_malformed_headers(change: dict[str, str]) -> None:
    headers = {k.lower(): v for k, v in signing.signed_headers("pbx1", SECRET, "PUT", "/p", b"", 1).items()}
    headers.update(change)
    with pytest.raises(signing.SignatureError):
        signing.parse_headers(headers)
