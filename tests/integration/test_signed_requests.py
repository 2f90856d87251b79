"""Signed requests: signature, timestamp window, nonce replay, source IP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from infra.pbx_client import PbxClient, session_from
from tests.helpers import assert_error, dump_firestore, ext
from webmeeting.domain.signing import signed_headers

pytestmark = pytest.mark.integration

SYNC = {"extensions": [{"number": "101", "first_name": "Ada", "last_name": "L", "email": "a@example.com"}]}


def _headers(pbx: PbxClient, body: bytes, *, ts: int | None = None, path: str = "/api/pbx/v1/sync") -> dict[str, str]:
    return signed_headers(pbx.pbx_id, pbx.api_secret.encode(), "PUT", path, body, ts or int(time.time()))


def test_a_valid_signature_is_accepted_by_hand_computed_canonical(pbx: PbxClient, api: str) -> None:
    body = json.dumps(SYNC).encode()
    ts, nonce = str(int(time.time())), "n" * 16 + "abc"
    canonical = "\n".join(["PUT", "/api/pbx/v1/sync", ts, nonce, hashlib.sha256(body).hexdigest()])
    sig = hmac.new(pbx.api_secret.encode(), canonical.encode(), hashlib.sha256).hexdigest()
    headers = {"X-PBX-Id": pbx.pbx_id, "X-Timestamp": ts, "X-Nonce": nonce, "X-Signature": sig}
    assert pbx.session.put(f"{api}/sync", data=body, headers=headers).status_code == 200


def test_decoded_secret_bytes_are_accepted_as_key_too(pbx: PbxClient, api: str) -> None:
    body = json.dumps(SYNC).encode()
    h = signed_headers(pbx.pbx_id, base64.b64decode(pbx.api_secret), "PUT", "/api/pbx/v1/sync", body, int(time.time()))
    assert pbx.session.put(f"{api}/sync", data=body, headers=h).status_code == 200


@pytest.mark.parametrize(
    "case", ["bad_signature", "stale_past", "stale_future", "missing_header", "unknown_pbx", "short_nonce", "wrong_path"]
)
def test_bad_signatures_are_401_and_change_nothing(pbx: PbxClient, api: str, case: str) -> None:
    before = dump_firestore()  # first: the time window cases sign just outside the window, right before sending
    body = json.dumps(SYNC).encode()
    h = _headers(pbx, body)
    if case == "bad_signature":
        h["X-Signature"] = ("0" if h["X-Signature"][0] != "0" else "1") + h["X-Signature"][1:]
    elif case == "stale_past":
        h = _headers(pbx, body, ts=int(time.time()) - 301)
    elif case == "stale_future":
        h = _headers(pbx, body, ts=int(time.time()) + 303)  # just outside the 300 s window, with room for a second boundary
    elif case == "missing_header":
        del h["X-Nonce"]
    elif case == "unknown_pbx":
        h["X-PBX-Id"] = "0" * 20
    elif case == "short_nonce":
        h["X-Nonce"] = "short"
    elif case == "wrong_path":
        h = _headers(pbx, body, path="/api/pbx/v1/sync?x=1")
    assert_error(pbx.session.put(f"{api}/sync", data=body, headers=h), 401, "unauthenticated")
    assert dump_firestore() == before


def test_a_replayed_nonce_is_401_and_changes_nothing(pbx: PbxClient, api: str) -> None:
    body = json.dumps(SYNC).encode()
    h = _headers(pbx, body)
    assert pbx.session.put(f"{api}/sync", data=body, headers=h).status_code == 200
    before = dump_firestore()
    err = assert_error(pbx.session.put(f"{api}/sync", data=body, headers=h), 401, "unauthenticated")
    assert "nonce" in err["message"]
    assert dump_firestore() == before


def test_a_request_from_another_ip_is_403_and_changes_nothing(pbx: PbxClient, api: str) -> None:
    before = dump_firestore()
    pbx.session = session_from("127.0.0.2")
    assert_error(pbx.sync([ext("101")]), 403, "ip_mismatch")
    assert dump_firestore() == before


def test_the_query_string_is_part_of_the_signature(pbx: PbxClient, api: str) -> None:
    h = signed_headers(pbx.pbx_id, pbx.api_secret.encode(), "GET", "/api/pbx/v1/reports?status=pending", b"", int(time.time()))
    assert pbx.session.get(f"{api}/reports?status=acked", headers=h).status_code == 401
    h = signed_headers(pbx.pbx_id, pbx.api_secret.encode(), "GET", "/api/pbx/v1/reports?status=pending", b"", int(time.time()))
    assert pbx.session.get(f"{api}/reports?status=pending", headers=h).status_code == 200
