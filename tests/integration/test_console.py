"""The operator console over HTTP through the front door (the browser test covers meetings,
recordings and privacy): converters changed only after the confirmation step, reports redacted
for every role until sanitized, the PBX and license views, each access audited."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import requests

from infra.launcher import Platform
from infra.pbx_client import PbxClient
from tests.helpers import ext
from webmeeting import runtime
from webmeeting.adapters import firestore as fs
from webmeeting.services import recordings as rec_svc

pytestmark = pytest.mark.integration
SUPPORT, ADMIN = "support@webmeeting.local", "admin@webmeeting.local"


def _get(platform: Platform, who: str, path: str) -> requests.Response:
    console = platform.endpoints["console"]
    return requests.get(console["url"] + path, auth=(who, console["password"]), timeout=10)


def _post(platform: Platform, who: str, path: str, form: dict[str, str]) -> requests.Response:
    console = platform.endpoints["console"]
    return requests.post(console["url"] + path, data=form, auth=(who, console["password"]), timeout=10)


def _token(page: str) -> str:
    found = re.search(r'name="token" value="([^"]+)"', page)
    assert found is not None, page
    return found.group(1)


def _available(converter: str) -> bool:
    return next(c.available for c in rec_svc.available_converters(runtime.settings()) if c.id == converter)


def test_a_converter_is_disabled_and_made_fallback_only_after_confirming(platform: Platform) -> None:
    page = _get(platform, ADMIN, "converters")
    assert page.status_code == 200 and "conv-eu" in page.text and "Disable…" in page.text
    assert "Disable…" not in _get(platform, SUPPORT, "converters").text  # support: no actions offered
    asked = _post(platform, ADMIN, "confirm", {"what": "disable", "converter": "conv-eu"})
    assert asked.status_code == 200 and "disable converter conv-eu" in asked.text
    assert _available("conv-eu")  # asking changes nothing
    done = _post(platform, ADMIN, "do", {"what": "disable", "converter": "conv-eu", "token": _token(asked.text)})
    assert done.status_code == 200 and not _available("conv-eu")
    again = _post(platform, ADMIN, "confirm", {"what": "enable", "converter": "conv-eu"})
    assert (
        _post(platform, ADMIN, "do", {"what": "enable", "converter": "conv-eu", "token": _token(again.text)}).status_code == 200
    )
    assert _available("conv-eu")
    fallback = _post(platform, ADMIN, "confirm", {"what": "fallback", "converter": "conv-us"})
    assert (
        _post(platform, ADMIN, "do", {"what": "fallback", "converter": "conv-us", "token": _token(fallback.text)}).status_code
        == 200
    )
    assert fs.data(rec_svc.config().get())["fallback"] == "conv-us"
    assert _post(platform, SUPPORT, "confirm", {"what": "disable", "converter": "conv-us"}).status_code == 403
    entries = [fs.data(s) for s in fs.audit().stream()]
    assert sorted(e["outcome"] for e in entries if e["action"] == "converter_availability" and e["operator"] == ADMIN) == [
        "disabled",
        "enabled",
    ]
    assert any(e["action"] == "converter_fallback" and e["operator"] == ADMIN for e in entries)
    assert any(
        e["action"] == "converter_availability" and e["operator"] == SUPPORT and e["outcome"] == "refused" for e in entries
    )


def test_reports_are_redacted_for_every_role_and_the_pbx_views_show_what_is_held(platform: Platform, pbx: PbxClient) -> None:
    pbx.sync([ext("101", "Alice", "Liddell", email="alice@example.com")])
    fs.reports().document("f" * 32).set(
        {
            "pbx_id": pbx.pbx_id,
            "status": "pending",
            "sanitized": 0,
            "created_at": datetime.now(UTC),
            "report": {
                "meeting_name": "Board meeting",
                "ended_at": None,
                "participants": [
                    {"name": "Alice Liddell", "email": "alice@example.com", "connected_seconds": 60, "reconnects": 0}
                ],
            },
        }
    )
    for who in (SUPPORT, ADMIN):
        reports = _get(platform, who, f"reports?pbx={pbx.pbx_id}")
        assert reports.status_code == 200
        assert "A**** L******" in reports.text and "a****@e******.com" in reports.text and "B**** m******" in reports.text
        assert "Alice Liddell" not in reports.text and "alice@example.com" not in reports.text
    held = _get(platform, SUPPORT, f"pbxs/{pbx.pbx_id}")
    assert held.status_code == 200 and "PBX sync data (1 extensions" in held.text
    assert "no contact for 60 days" in held.text
    assert pbx.pbx_id in _get(platform, SUPPORT, "pbxs").text
    licenses = _get(platform, SUPPORT, "licenses")
    assert licenses.status_code == 200 and platform.endpoints["dev_license_keys"][0] in licenses.text
    actions = {(fs.data(s)["operator"], fs.data(s)["action"]) for s in fs.audit().stream()}
    assert {
        (SUPPORT, "view_reports"),
        (ADMIN, "view_reports"),
        (SUPPORT, "view_pbx"),
        (SUPPORT, "view_pbxs"),
        (SUPPORT, "view_licenses"),
    } <= actions
