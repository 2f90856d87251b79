"""Services called directly against the Firestore emulator: the registry, sessions, the
invitation bounds (a refusal writes nothing), the operators' PBX list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from infra.pbx_client import PbxClient
from tests.service.conftest import LICENSE, MCU_ID, dump
from webmeeting import tokens
from webmeeting.adapters import firestore as fs
from webmeeting.domain.api import McuEvent
from webmeeting.errors import Conflict, Forbidden, NotFound, RateLimited
from webmeeting.runtime import settings
from webmeeting.services import invitations, licenses, pbx_data, sessions

pytestmark = pytest.mark.service

NOW = datetime.now(UTC).replace(microsecond=0)


def test_the_license_registry() -> None:
    made = licenses.add_license(edition="pro", expires_at=NOW + timedelta(days=3), max_participants=5, recording=False)
    assert made.key in {lic.key for lic in licenses.list_licenses()}
    with pytest.raises(Conflict):
        licenses.add_license(edition="pro", expires_at=NOW, max_participants=5, recording=False, key=made.key)
    with pytest.raises(NotFound):
        licenses.revoke_license("WM-NONE-NONE-NONE")
    loaded = licenses.load_license(LICENSE)
    assert loaded is not None and loaded.max_participants == 10 and licenses.load_license("") is None


def _event(kind: str, pid: str, at: datetime) -> McuEvent:
    return McuEvent(id=f"ev-{kind}-{pid}", type=kind, meeting_key="k" * 22, participant_id=pid, at=at, mcu_id=MCU_ID)  # type: ignore[arg-type]


def test_sessions_count_people_once_and_ignore_duplicates() -> None:
    first = sessions.record_events([_event("joined", "p" * 10, NOW), _event("joined", "q" * 10, NOW)], MCU_ID, NOW)
    assert first.stored == 2 and len(first.started) == 1
    again = sessions.record_events([_event("joined", "p" * 10, NOW)], MCU_ID, NOW)  # a retried batch
    assert again.stored == 0
    room = sessions.occupancy("k" * 22)
    assert room.count == 2 and room.mcu_id == MCU_ID and sessions.is_present("k" * 22, "p" * 10)
    left = sessions.record_events([_event("left", "p" * 10, NOW + timedelta(seconds=1))], MCU_ID, NOW)
    assert left.stored == 1 and not sessions.is_present("k" * 22, "p" * 10)


def _claims(key: str, role: str) -> tokens.JoinClaims:
    return tokens.JoinClaims(key, "p" * 24, "Ada", role, MCU_ID, 10, NOW + timedelta(minutes=1))


def test_invitations_from_inside_a_meeting_are_bounded_and_a_refusal_writes_nothing(pbx: PbxClient) -> None:
    ext = {"number": "101", "first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", "vanity_name": None}
    assert pbx.sync([ext]).status_code == 200
    key = pbx.sync([ext]).json()["extensions"][0]["quick_meeting_url"].rsplit("/", 1)[1]
    people = [{"name": f"P{i}", "email": f"p{i}@example.com"} for i in range(invitations.ORGANIZER_INVITES_PER_HOUR + 1)]
    before = dump()
    with pytest.raises(Forbidden):
        invitations.invite_from_meeting(_claims(key, "participant"), people[:1], settings(), NOW)
    with pytest.raises(RateLimited):
        invitations.invite_from_meeting(_claims(key, "organizer"), people, settings(), NOW)
    assert dump() == before


def test_operators_list_pbxs_without_their_secrets(pbx: PbxClient) -> None:
    rows = pbx_data.listing()
    assert [(r["id"], r["pbx_fqdn"], r["license_key"]) for r in rows] == [(pbx.pbx_id, "pbx.example.com", LICENSE)]
    assert "secret_enc" not in rows[0] and fs.data(fs.pbxs().document(pbx.pbx_id).get())["secret_enc"]
