"""Outside in, the operator console: who gets in (only through the sign-in, never with a header of
one's own making), what a form posted by someone else or from elsewhere does (nothing), and what
bad input gets (a clear 4xx, nothing written)."""

from __future__ import annotations

import re
import time

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from infra.launcher import IAP_AUDIENCE, IAP_KID, Platform
from infra.pbx_client import PbxClient, session_from
from tests.helpers import allowed_before_429, assert_limit, dump_firestore
from webmeeting.adapters import firestore as fs

pytestmark = pytest.mark.integration
SUPPORT, ADMIN = "support@webmeeting.local", "admin@webmeeting.local"


def _forged(email: str) -> str:
    """An assertion with IAP's claims and the dev key's id, signed by a key of the attacker's."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    now = int(time.time())
    claims = {"iss": "https://cloud.google.com/iap", "aud": IAP_AUDIENCE, "email": email, "iat": now, "exp": now + 600}
    return jwt.encode(claims, pem, algorithm="ES256", headers={"kid": IAP_KID})


def _url(platform: Platform, path: str = "") -> str:
    return str(platform.endpoints["console"]["url"]) + path


def _as(platform: Platform, email: str) -> tuple[str, str]:
    return email, str(platform.endpoints["console"]["password"])


def test_only_the_sign_in_gets_in_and_a_header_of_ones_own_is_dropped(platform: Platform) -> None:
    before = dump_firestore()
    anonymous = requests.get(_url(platform), timeout=10)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Basic ")
    assert anonymous.json() == {"error": {"code": "unauthenticated", "message": "sign in"}}
    assert requests.get(_url(platform), auth=(ADMIN, "guess"), timeout=10).status_code == 401
    forged = {"x-goog-iap-jwt-assertion": _forged(ADMIN)}
    assert requests.get(_url(platform, "audit"), headers=forged, timeout=10).status_code == 401  # no sign-in: no entry
    # signed in as someone without a role, with an admin's header of one's own: the door replaces it
    nobody = requests.get(_url(platform, "audit"), headers=forged, auth=_as(platform, "eve@example.com"), timeout=10)
    assert nobody.status_code == 403 and "no access" in nobody.text and "<header" not in nobody.text
    # straight to the function, past the door (ingress admits only the load balancer in production)
    direct = platform.upstreams["console"] + "/console/audit"
    for headers in ({}, forged, {"x-goog-iap-jwt-assertion": "e30.e30.sig"}, {"Authorization": "Basic YWRtaW46eA=="}):
        assert requests.get(direct, headers=headers, timeout=10).status_code == 401
    assert dump_firestore() == before  # nobody got far enough to be audited


def test_a_form_from_someone_else_or_from_elsewhere_does_nothing(platform: Platform, pbx: PbxClient) -> None:
    confirm = requests.post(
        _url(platform, "confirm"), data={"what": "delete", "pbx": pbx.pbx_id}, auth=_as(platform, ADMIN), timeout=10
    )
    assert confirm.status_code == 200 and "delete PBX" in confirm.text
    token = re.search(r'name="token" value="([^"]+)"', confirm.text)
    assert token is not None
    form = {"token": token.group(1), "what": "delete", "pbx": pbx.pbx_id}
    before = {k: v for k, v in dump_firestore().items() if not k.startswith("audit/")}

    def unchanged() -> bool:
        return {k: v for k, v in dump_firestore().items() if not k.startswith("audit/")} == before

    # the admin's token in support's hands
    assert requests.post(_url(platform, "do"), data=form, auth=_as(platform, SUPPORT), timeout=10).status_code == 403
    # the admin's own browser, made to post from another site
    cross = {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}
    assert requests.post(_url(platform, "do"), data=form, headers=cross, auth=_as(platform, ADMIN), timeout=10).status_code == 403
    # another action, or another target, under the same token
    for other in ({**form, "pbx": "another-pbx"}, {**form, "what": "erase", "email": "x@example.com"}):
        assert requests.post(_url(platform, "do"), data=other, auth=_as(platform, ADMIN), timeout=10).status_code == 403
    assert unchanged() and fs.pbxs().document(pbx.pbx_id).get().exists
    refused = [fs.data(s) for s in fs.audit().stream() if fs.data(s)["outcome"] == "refused"]
    assert {(e["operator"], e["action"]) for e in refused} == {(SUPPORT, "pbx_delete")}  # support's try is on record


@pytest.mark.parametrize(
    ("method", "path", "data", "status"),
    [
        ("GET", "meetings?key=../../etc", None, 400),
        ("GET", "recordings?fqdn=a%00b", None, 400),
        ("GET", "pbxs/no-such-pbx", None, 404),
        ("GET", "nowhere", None, 404),
        ("DELETE", "pbxs", None, 405),
        ("POST", "confirm", {"what": "launch"}, 400),
        ("POST", "confirm", {"what": "erase", "email": "not an address"}, 400),
        ("POST", "confirm", {"what": "delete", "pbx": "../x"}, 400),
        ("POST", "confirm", {"what": "erase", "email": "a@example.com", "pad": "x" * 5000}, 413),
        ("POST", "privacy/export", {"token": "1.x", "email": "a@example.com"}, 403),
        ("POST", "recordings/" + "0" * 32 + "/link", {"token": ""}, 403),
    ],
)
def test_bad_input_gets_a_clear_error_and_changes_nothing(
    platform: Platform, method: str, path: str, data: dict[str, str] | None, status: int
) -> None:
    before = {k: v for k, v in dump_firestore().items() if not k.startswith("audit/")}
    resp = requests.request(method, _url(platform, path), data=data, auth=_as(platform, ADMIN), timeout=10)
    assert resp.status_code == status, resp.text
    assert "Traceback" not in resp.text and "set-cookie" not in {k.lower() for k in resp.headers}
    assert {k: v for k, v in dump_firestore().items() if not k.startswith("audit/")} == before


def test_pages_set_no_cookie_and_allow_no_script_or_foreign_form(platform: Platform) -> None:
    resp = requests.get(_url(platform), auth=_as(platform, SUPPORT), timeout=10)
    assert resp.status_code == 200 and "set-cookie" not in {k.lower() for k in resp.headers}
    policy = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "form-action 'self'" in policy and "script-src" not in policy
    assert resp.headers["Cache-Control"] == "no-store" and resp.headers["Referrer-Policy"] == "no-referrer"


def test_the_console_limit_of_the_route_table_holds_before_the_sign_in(platform: Platform) -> None:
    from webmeeting import routes

    limit = routes.limit_for("/console/")
    assert limit is not None and limit.name == "console"
    client = session_from("127.0.0.71")  # its own bucket: the other tests' requests do not count
    statuses: list[int] = []

    def unsigned() -> int:
        statuses.append(client.get(_url(platform), timeout=10).status_code)
        return statuses[-1]

    assert_limit(*allowed_before_429(unsigned, limit.count), limit)
    assert set(statuses[:-1]) == {401}
