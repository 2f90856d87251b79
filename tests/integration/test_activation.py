"""POST /activate: license checks, FQDN binding, secret handling, IP recording."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from infra.pbx_client import PbxClient
from tests.helpers import assert_error, dump_firestore, new_pbx
from webmeeting.adapters import firestore as fs
from webmeeting.services.licenses import add_license, revoke_license

pytestmark = pytest.mark.integration


def test_activation_binds_fqdn_records_ip_and_returns_the_contract_body(api: str, license_key: str) -> None:
    client = PbxClient(api)
    resp = client.activate(license_key, "PBX.Example.com", "meet.example.com")
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert set(body) == {"pbx_id", "api_secret", "sync_interval_s", "license", "mcu"}
    assert body["sync_interval_s"] == 28800
    assert body["license"]["recording"] is True and body["license"]["max_participants"] == 25
    pbx = fs.pbxs().document(body["pbx_id"]).get().to_dict()
    assert pbx["pbx_fqdn"] == "pbx.example.com"  # FQDNs are case-insensitive: stored lower-case
    assert pbx["ip"] == "127.0.0.1"
    assert fs.licenses().document(license_key).get().get("bound_fqdn") == "pbx.example.com"
    # the secret is never stored in clear
    assert body["api_secret"] not in str(dump_firestore())


def test_client_supplied_forwarded_for_is_not_trusted(api: str, license_key: str) -> None:
    client = PbxClient(api)
    client.session.headers["X-Forwarded-For"] = "203.0.113.9"
    assert client.activate(license_key, "pbx.example.com", "meet.example.com").status_code == 201
    assert fs.pbxs().document(client.pbx_id).get().get("ip") == "127.0.0.1"


@pytest.mark.parametrize("case", ["unknown", "expired", "revoked"])
def test_invalid_licenses_are_refused_and_change_nothing(api: str, case: str) -> None:
    key = "WM-TEST-NOPE-0001"
    if case == "expired":
        key = add_license(
            edition="pro", expires_at=datetime.now(UTC) - timedelta(seconds=1), max_participants=10, recording=False
        ).key
    elif case == "revoked":
        key = add_license(
            edition="pro", expires_at=datetime.now(UTC) + timedelta(days=3), max_participants=10, recording=False
        ).key
        revoke_license(key)
    before = dump_firestore()
    resp = PbxClient(api).activate(key, "pbx.example.com", "meet.example.com")
    err = assert_error(resp, 403, "license_invalid")
    assert case in err["message"]
    assert dump_firestore() == before


def test_fqdn_bound_elsewhere_and_license_bound_elsewhere_conflict(api: str, platform) -> None:  # type: ignore[no-untyped-def]
    first, second = platform.endpoints["dev_license_keys"][:2]
    new_pbx(api, first, "pbx.example.com")
    before = dump_firestore()
    assert_error(PbxClient(api).activate(second, "pbx.example.com", "meet.example.com"), 409, "conflict")
    assert_error(PbxClient(api).activate(first, "other.example.com", "meet.example.com"), 409, "conflict")
    assert dump_firestore() == before


def test_reactivation_rotates_the_secret_and_updates_the_ip(api: str, license_key: str) -> None:
    old = new_pbx(api, license_key)
    assert old.sync([]).status_code == 200
    again = new_pbx(api, license_key, source_ip="127.0.0.2")
    assert again.pbx_id == old.pbx_id and again.api_secret != old.api_secret
    assert fs.pbxs().document(old.pbx_id).get().get("ip") == "127.0.0.2"
    old.session = again.session  # same source address, old secret
    assert_error(old.sync([]), 401, "unauthenticated")
    assert again.sync([]).status_code == 200


def test_platform_clock_is_shiftable_for_running_services(api: str, clock_file) -> None:  # type: ignore[no-untyped-def]
    key = add_license(edition="pro", expires_at=datetime.now(UTC) + timedelta(days=1), max_participants=10, recording=False).key
    clock_file.write_text(str(2 * 86400))
    assert_error(PbxClient(api).activate(key, "pbx.example.com", "meet.example.com"), 403, "license_invalid")
    clock_file.write_text("0")
    assert PbxClient(api).activate(key, "pbx.example.com", "meet.example.com").status_code == 201


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "body"),
        (b"", "body"),
        (b'{"license_key": 5, "pbx_fqdn": "a.b", "webmeeting_fqdn": "c.d", "pbx_version": "1"}', "license_key"),
        (
            b'{"license_key": "WM-DEV-LOCAL-0001", "pbx_fqdn": "not a host", "webmeeting_fqdn": "c.d", "pbx_version": "1"}',
            "pbx_fqdn",
        ),
        (
            b'{"license_key": "WM-DEV-LOCAL-0001", "pbx_fqdn": "a.example.com", "webmeeting_fqdn": "c.d", "pbx_version": "1", "x": 1}',
            "x",
        ),
        (b'{"license_key": "WM-DEV-LOCAL-0001", "pbx_fqdn": "a.example.com", "webmeeting_fqdn": "c.d"}', "pbx_version"),
        (b"[]", "body"),
    ],
)
def test_malformed_activation_is_400_and_changes_nothing(api: str, body: bytes, fragment: str) -> None:
    before = dump_firestore()
    resp = PbxClient(api).session.post(f"{api}/activate", data=body, headers={"Content-Type": "application/json"})
    err = assert_error(resp, 400, "invalid_request")
    assert fragment in err["message"]
    assert dump_firestore() == before


def test_oversized_activation_is_413(api: str) -> None:
    before = dump_firestore()
    resp = PbxClient(api).session.post(f"{api}/activate", data=b"{" + b" " * (1024 * 1024 + 10) + b"}")
    assert_error(resp, 413, "too_large")
    assert dump_firestore() == before


def test_unknown_paths_and_methods(api: str) -> None:
    s = PbxClient(api).session
    assert_error(s.get(f"{api}/nope"), 404, "not_found")
    assert_error(s.get(f"{api}/activate"), 405, "method_not_allowed")
