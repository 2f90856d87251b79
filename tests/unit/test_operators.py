"""The operator rules (pure): roles, redaction, the audit entry's shape, confirmation tokens; and
the dev sign-in's assertion verified as IAP's is."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from infra.frontdoor import DevSignIn
from webmeeting import runtime
from webmeeting.adapters import iap
from webmeeting.domain import operators as rules
from webmeeting.domain.operators import Action, Operator, Role, Shown
from webmeeting.errors import Unauthenticated

KEY = b"k" * 32
SUPPORT = Operator("sam@example.com", Role.SUPPORT)
ADMIN = Operator("ada@example.com", Role.ADMIN)
AUDIENCE = "/projects/1/global/backendServices/2"


def test_support_may_look_but_not_open_erase_delete_or_read_the_log() -> None:
    for action in (Action.RECORDING_LINK, Action.PRIVACY_ERASE, Action.PRIVACY_EXPORT, Action.PBX_DELETE, Action.VIEW_AUDIT):
        assert not rules.allowed(Role.SUPPORT, action) and rules.allowed(Role.ADMIN, action)
    for action in (Action.VIEW_MEETING, Action.VIEW_MCUS, Action.VIEW_RECORDINGS, Action.VIEW_REPORTS):
        assert rules.allowed(Role.SUPPORT, action)
    assert not any(rules.allowed(None, a) for a in Action)
    assert set(rules.PERMISSIONS) == set(Action)  # every action has its row


def test_support_sees_names_emails_and_ips_redacted_admins_in_full() -> None:
    shown = Shown(SUPPORT)
    assert shown.name("Alice Liddell") == "A**** L******"
    assert shown.email("grace@example.org") == "g****@e******.org"
    assert shown.ip("203.0.113.7") == "203.0.x.x"
    assert shown.ip("2001:db8:85a3::8a2e:370:7334") == "2001:db8:x::"
    assert shown.ip("not an address") == "x" and shown.ip(None) is None
    full = Shown(ADMIN)
    assert (full.name("Alice Liddell"), full.email("grace@example.org"), full.ip("203.0.113.7")) == (
        "Alice Liddell",
        "grace@example.org",
        "203.0.113.7",
    )


def test_an_audit_entry_names_identifiers_only() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    ref = rules.meeting_ref("K" * 22)
    entry = rules.audit_entry(SUPPORT, Action.VIEW_MEETING, ref, [ref, ref, "pbx:p1"], now, "ok")
    assert entry == {
        "at": now,
        "operator": "sam@example.com",
        "role": "support",
        "via": "console",
        "action": "view_meeting",
        "target": ref,
        "records": sorted({ref, "pbx:p1"}),
        "outcome": "ok",
    }
    assert "K" * 22 not in json.dumps(entry, default=str)  # the key is a link: only its hash is kept
    subject = rules.subject_ref(KEY, "Grace@Example.org ")
    assert subject == rules.subject_ref(KEY, "grace@example.org") and "grace" not in subject
    assert subject != rules.subject_ref(b"x" * 32, "grace@example.org")  # keyed: not a plain hash
    many = rules.audit_entry(ADMIN, Action.VIEW_PBXS, "pbxs", [f"pbx:{n}" for n in range(50)], now, "ok")
    assert len(many["records"]) == 30  # what one array-contains-any query can look for


def test_a_confirmation_is_bound_to_operator_action_target_and_time() -> None:
    now = time.time()
    token = rules.confirmation(KEY, ADMIN, Action.PBX_DELETE, "pbx:p1", int(now) + 600)
    assert rules.confirmed(KEY, token, ADMIN, Action.PBX_DELETE, "pbx:p1", now)
    assert not rules.confirmed(KEY, token, SUPPORT, Action.PBX_DELETE, "pbx:p1", now)
    assert not rules.confirmed(KEY, token, Operator("eve@example.com", Role.ADMIN), Action.PBX_DELETE, "pbx:p1", now)
    assert not rules.confirmed(KEY, token, ADMIN, Action.PRIVACY_ERASE, "pbx:p1", now)
    assert not rules.confirmed(KEY, token, ADMIN, Action.PBX_DELETE, "pbx:p2", now)
    assert not rules.confirmed(KEY, token, ADMIN, Action.PBX_DELETE, "pbx:p1", now + 601)  # expired
    assert not rules.confirmed(b"o" * 32, token, ADMIN, Action.PBX_DELETE, "pbx:p1", now)
    far = rules.confirmation(KEY, ADMIN, Action.PBX_DELETE, "pbx:p1", int(now) + 86400)
    assert not rules.confirmed(KEY, far, ADMIN, Action.PBX_DELETE, "pbx:p1", now)  # no token lives longer than asked
    for junk in ("", "x", "1.", ".abc", "9" * 40 + ".x", token + "0"):
        assert not rules.confirmed(KEY, junk, ADMIN, Action.PBX_DELETE, "pbx:p1", now)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Ada@Example.com ", "ada@example.com"), ("no-at", None), ("a@b", None), ("", None), ("x" * 250 + "@e.com", None)],
)
def test_operator_addresses(text: str, expected: str | None) -> None:
    assert rules.normalize_email(text) == expected


def _keys(tmp_path: Path) -> tuple[bytes, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{**jwk, "kid": "dev", "alg": "ES256"}]}))
    return pem, path


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_the_dev_sign_in_yields_what_iap_would_and_the_console_verifies_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pem, jwks = _keys(tmp_path)
    monkeypatch.setenv("WEBMEETING_IAP_JWKS_FILE", str(jwks))
    runtime.reset()  # the configuration is read once per process: read it again
    iap.reset()
    try:
        door = DevSignIn(pem, "dev", AUDIENCE, "s3cret")
        assertion = door.assertion(_basic("Ada@Example.com", "s3cret"), time.time())
        assert assertion is not None and iap.verified_email(assertion, AUDIENCE) == "ada@example.com"
        for wrong in (_basic("ada@example.com", "guess"), _basic("", "s3cret"), "Bearer x", "Basic !!!", None):
            assert door.assertion(wrong, time.time()) is None
        with pytest.raises(Unauthenticated):
            iap.verified_email(assertion, "/projects/1/global/backendServices/other")  # another backend's
        stale = door.assertion(_basic("ada@example.com", "s3cret"), time.time() - 3600)
        with pytest.raises(Unauthenticated):
            iap.verified_email(stale, AUDIENCE)
        (tmp_path / "other").mkdir()
        other_pem, _ = _keys(tmp_path / "other")
        forged = DevSignIn(other_pem, "dev", AUDIENCE, "s3cret").assertion(_basic("ada@example.com", "s3cret"), time.time())
        with pytest.raises(Unauthenticated):
            iap.verified_email(forged, AUDIENCE)  # signed by someone else's key
        unsigned = jwt.encode({"email": "ada@example.com", "aud": AUDIENCE, "iss": iap.ISSUER}, "x" * 32, algorithm="HS256")
        for bad in (unsigned, "", None, "a.b.c", "x" * 5000):
            with pytest.raises(Unauthenticated):
                iap.verified_email(bad, AUDIENCE)
    finally:
        monkeypatch.undo()
        runtime.reset()
        iap.reset()
