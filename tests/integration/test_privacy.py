"""Data-subject rights through the admin CLI against the emulators: export of everything held
about a PBX or an email address, erasure, manual PBX deletion, the retention report; and a
retention sweep interrupted halfway finishes on its next run."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from typer.testing import CliRunner

from infra.launcher import Platform
from infra.pbx_client import PbxClient
from tests.helpers import dump_firestore, ext, meeting, new_pbx
from webmeeting import runtime
from webmeeting.adapters import firestore as fs
from webmeeting.cli.admin import app
from webmeeting.services import retention

pytestmark = pytest.mark.integration
runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": "220"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def held(pbx: PbxClient) -> str:
    pbx.sync([ext("101", email="ada@example.com")])
    body = meeting(
        "101", participants=[{"name": "Grace Hopper", "email": "Grace@Example.org"}, {"name": "Kat", "email": "kat@example.org"}]
    )
    return str(pbx.put_meeting("m-1", body).json()["meeting_key"])


def test_export_a_pbx(held: str, pbx: PbxClient) -> None:
    data = json.loads(invoke("privacy", "export", "--pbx", pbx.pbx_id))
    assert data["pbx"]["id"] == pbx.pbx_id and "secret_enc" not in data["pbx"]
    assert [e["id"] for e in data["extensions"]] == ["101"]
    assert [m["id"] for m in data["meetings"] if m["kind"] == "scheduled"] == [held]
    assert data["fqdn_binding"]["pbx_id"] == pbx.pbx_id


def test_export_and_erase_an_email_address(held: str, pbx: PbxClient) -> None:
    data = json.loads(invoke("privacy", "export", "--email", "grace@example.org"))
    assert [m["id"] for m in data["meetings"]] == [held] and data["extensions"] == []
    ada = json.loads(invoke("privacy", "export", "--email", "ada@example.com"))
    assert [(e["pbx_id"], e["id"]) for e in ada["extensions"]] == [(pbx.pbx_id, "101")]

    before = dump_firestore()
    erased = json.loads(invoke("privacy", "erase", "--email", "grace@example.org"))
    assert erased["meetings"] == 1 and erased["held_by_pbxs"] == []
    after = dump_firestore()
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    audit = {p for p in changed if p.startswith("audit/")}
    assert changed - audit == {f"meetings/{held}"} and len(audit) == 1  # and the erasure's audit entry
    assert after[audit.pop()]["action"] == "privacy_erase"
    people = after[f"meetings/{held}"]["participants"]
    assert people == [{"name": "Grace Hopper", "email": None}, {"name": "Kat", "email": "kat@example.org"}]
    assert json.loads(invoke("privacy", "export", "--email", "grace@example.org"))["meetings"] == []
    assert "grace@example.org" not in json.dumps(dump_firestore(), default=str).lower()
    assert json.loads(invoke("privacy", "erase", "--email", "ada@example.com"))["held_by_pbxs"] == [
        {"pbx_id": pbx.pbx_id, "extension": "101"}
    ]


def test_manual_deletion_of_a_pbx(platform: Platform, held: str, pbx: PbxClient, api: str) -> None:
    other = new_pbx(api, platform.endpoints["dev_license_keys"][1], fqdn="other.example.com")
    other.sync([ext("201")])
    theirs = {p: v for p, v in dump_firestore().items() if other.pbx_id in p}
    assert runner.invoke(app, ["pbx", "delete", pbx.pbx_id, "--yes"]).exit_code == 0
    left = dump_firestore()
    assert not any(pbx.pbx_id in p for p in left) and f"meetings/{held}" not in left
    assert {p: v for p, v in left.items() if other.pbx_id in p} == theirs
    assert runner.invoke(app, ["pbx", "delete", pbx.pbx_id, "--yes"]).exit_code == 1  # gone: a clear error


def test_retention_report_lists_what_expires_when(held: str, pbx: PbxClient) -> None:
    out = invoke("retention", "report", "--pbx", pbx.pbx_id)
    assert "PBX sync data (1 extensions" in out and "no contact for 60 days" in out
    assert "meeting m-1: name, comments, invitees' names" in out and "meeting m-1: invitees' emails" in out
    start = fs.data(fs.meetings().document(held).get())["scheduled_start"]
    assert str(start + timedelta(days=7))[:16] in out


def test_a_sweep_interrupted_halfway_finishes_on_the_next_run(platform: Platform) -> None:
    old = datetime.now(UTC) - timedelta(days=8)
    batch = fs.client().batch()
    for i in range(450):
        ref = fs.client().collection("participant_events").document(f"ev-int-{i:04d}")
        batch.set(ref, {"type": "joined", "meeting_key": "k" * 22, "participant_id": "p-00000001", "at": old})
        if i % 400 == 399:
            batch.commit()
            batch = fs.client().batch()
    batch.commit()
    now = datetime.now(UTC)
    first = retention.run_rule("participant_events", runtime.settings(), now, limit=100)  # then "the process died"
    assert first == {"rule": "participant_events", "done": 100, "more": True}
    assert len(list(fs.client().collection("participant_events").stream())) == 350
    # the next run, as the scheduler or the re-enqueued task runs it: batches of 200 through Cloud Tasks
    resp = requests.post(
        f"{platform.upstreams['tasks_api']}/tasks/v1/retention/participant_events",
        json={},
        headers={"X-Webmeeting-Task-Secret": platform.tasks_secret},
        timeout=60,
    )
    assert resp.json() == {"rule": "participant_events", "done": 200, "more": True}
    deadline = time.monotonic() + 30
    while list(fs.client().collection("participant_events").limit(1).stream()) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert list(fs.client().collection("participant_events").stream()) == []


def test_an_export_lists_the_audit_entries_naming_the_subjects_records(held: str, pbx: PbxClient) -> None:
    from webmeeting.domain.operators import Operator, Role, meeting_ref
    from webmeeting.services import operations

    support = Operator("sam@example.com", Role.SUPPORT)
    operations.meeting(support, held)  # support looked at the meeting Grace was invited to
    operations.pbxs(support)  # and at the PBX list: no record of Grace's
    data = json.loads(invoke("privacy", "export", "--email", "grace@example.org"))
    named = [(e["operator"], e["action"]) for e in data["audit"]]
    assert named == [("sam@example.com", "view_meeting")]
    assert meeting_ref(held) in data["audit"][0]["records"] and held not in json.dumps(data["audit"], default=str)
    again = json.loads(invoke("privacy", "export", "--email", "grace@example.org"))
    assert [e["action"] for e in again["audit"]] == ["view_meeting", "privacy_export"]  # the first export is on record too
    assert json.loads(invoke("privacy", "export", "--email", "nobody@example.org"))["audit"] == []
