"""GET /reports and POST /reports/{id}/ack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from infra.pbx_client import PbxClient
from tests.helpers import assert_error, dump_firestore
from webmeeting.adapters import firestore as fs

pytestmark = pytest.mark.integration


def _store_report(pbx_id: str, report_id: str) -> None:
    """Arrange a stored report as the report engine leaves it."""
    start = datetime(2026, 12, 1, 9, tzinfo=UTC)
    fs.reports().document(report_id).set(
        {
            "pbx_id": pbx_id,
            "organizer": "101",
            "status": "pending",
            "report": {
                "pbx_meeting_id": "m-1",
                "meeting_name": "Review",
                "started_at": start,
                "ended_at": start + timedelta(minutes=30),
                "participants": [
                    {"name": "Ada", "email": "a@example.com", "role": "organizer", "connected_seconds": 1800, "reconnects": 0}
                ],
            },
        }
    )


def test_no_reports_is_an_empty_list(pbx: PbxClient) -> None:
    resp = pbx.reports()
    assert resp.status_code == 200 and resp.json() == {"reports": []}


def test_pending_reports_are_listed_until_acked(pbx: PbxClient) -> None:
    _store_report(pbx.pbx_id, "r1")
    listed = pbx.reports().json()["reports"]
    assert [r["id"] for r in listed] == ["r1"] and listed[0]["participants"][0]["connected_seconds"] == 1800
    assert pbx.sync([]).json()["pending_reports"] == 1
    assert pbx.ack("r1").status_code == 204
    assert pbx.reports().json() == {"reports": []}
    assert [r["id"] for r in pbx.reports("acked").json()["reports"]] == ["r1"]


def test_acking_an_unknown_or_foreign_report_is_404_and_changes_nothing(pbx: PbxClient) -> None:
    _store_report("another-pbx", "r2")
    before = dump_firestore()
    assert_error(pbx.ack("nope"), 404, "not_found")
    assert_error(pbx.ack("r2"), 404, "not_found")
    assert dump_firestore() == before


def test_bad_report_queries_are_400(pbx: PbxClient) -> None:
    assert_error(pbx.signed("GET", "/reports?status=all"), 400, "invalid_request")
    assert_error(pbx.signed("GET", "/reports?status=pending&x=1"), 400, "invalid_request")
