"""PUT /sync: validation, disabled-with-reason, vanity uniqueness, Quick Meetings, deletion,
and the write cost of unchanged and partly changed re-syncs."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from infra.pbx_client import PbxClient
from tests.helpers import assert_error, dump_firestore, ext, meeting
from webmeeting.adapters import firestore as fs

pytestmark = pytest.mark.integration


def _by_number(resp: requests.Response) -> dict[str, dict[str, Any]]:
    assert resp.status_code == 200, resp.text
    return {e["number"]: e for e in resp.json()["extensions"]}


def test_sync_enables_complete_extensions_and_disables_others_with_a_reason(pbx: PbxClient) -> None:
    result = _by_number(
        pbx.sync(
            [
                ext("101", vanity="ada"),
                ext("102", email=""),
                ext("103", first=None, last=None),
                ext("104", first=None, last="Only"),
                ext("105", email="not-an-email"),
                ext("106", vanity="ADA"),
            ]
        )
    )
    assert result["101"]["enabled"] and result["101"]["quick_meeting_url"].startswith("http://127.0.0.1")
    assert "reason" not in result["101"]
    assert result["102"] == {"number": "102", "enabled": False, "reason": "missing_email"}
    assert result["103"]["reason"] == "missing_name"
    assert result["104"]["enabled"]  # a last name alone is enough
    assert result["105"]["reason"] == "invalid_email"
    assert result["106"]["reason"] == "vanity_taken"  # case-insensitive clash, later one loses
    stored = fs.extensions(pbx.pbx_id).document("102").get().to_dict()
    assert stored["enabled"] is False and stored["reason"] == "missing_email"
    assert requests.get(result["101"]["quick_meeting_url"], timeout=10).status_code == 200


def test_a_later_sync_fixes_a_disabled_extension_and_keeps_quick_links_stable(pbx: PbxClient) -> None:
    first = _by_number(pbx.sync([ext("101"), ext("102", email="")]))
    second = _by_number(pbx.sync([ext("101"), ext("102", email="fixed@example.com")]))
    assert second["102"]["enabled"]
    assert second["101"]["quick_meeting_url"] == first["101"]["quick_meeting_url"]


def test_a_disabled_extensions_links_answer_404_until_it_is_fixed(pbx: PbxClient) -> None:
    link = _by_number(pbx.sync([ext("101")]))["101"]["quick_meeting_url"]
    assert requests.get(link, timeout=10).status_code == 200
    assert _by_number(pbx.sync([ext("101", email="")]))["101"]["enabled"] is False
    assert requests.get(link, timeout=10).status_code == 404
    assert _by_number(pbx.sync([ext("101")]))["101"]["quick_meeting_url"] == link
    assert requests.get(link, timeout=10).status_code == 200


def test_the_vanity_holder_keeps_its_name_whatever_the_list_order(pbx: PbxClient) -> None:
    _by_number(pbx.sync([ext("101", vanity="ada")]))
    result = _by_number(pbx.sync([ext("100", vanity="Ada"), ext("101", vanity="ada")]))
    assert result["101"]["enabled"] and result["100"]["reason"] == "vanity_taken"


def test_a_vanished_extension_is_deleted_with_everything_it_owns(pbx: PbxClient) -> None:
    result = _by_number(pbx.sync([ext("101", vanity="ada"), ext("102")]))
    created = pbx.put_meeting("m1", meeting("101"))
    assert created.status_code == 201
    links = [result["101"]["quick_meeting_url"], created.json()["url"], created.json()["vanity_url"]]
    assert all(requests.get(u, timeout=10).status_code == 200 for u in links)
    _by_number(pbx.sync([ext("102")]))
    assert all(requests.get(u, timeout=10).status_code == 404 for u in links)
    assert not fs.extensions(pbx.pbx_id).document("101").get().exists
    docs = dump_firestore()
    assert not [p for p, d in docs.items() if p.startswith("meetings/") and d.get("organizer") == "101"]
    assert not [p for p in docs if p.startswith("vanity_links/")]


def _changes(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    return {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}


def test_an_unchanged_resync_writes_only_bookkeeping(pbx: PbxClient) -> None:
    exts = [ext(str(100 + i), vanity=f"user{i}") for i in range(40)]
    pbx.sync(exts)
    before = dump_firestore()
    assert pbx.sync(exts).status_code == 200
    changed = _changes(before, dump_firestore())
    assert {p.split("/")[0] for p in changed} == {"pbxs", "nonces"}
    assert [p for p in changed if p.startswith("pbxs/")] == [f"pbxs/{pbx.pbx_id}"]


def test_a_sync_changing_k_extensions_touches_o_k_documents(pbx: PbxClient) -> None:
    exts = [ext(str(100 + i)) for i in range(60)]
    pbx.sync(exts)
    before = dump_firestore()
    exts[5] = ext("105", first="Changed")
    exts = exts[:-1] + [ext("999")]  # one removed, one added, one changed
    assert pbx.sync(exts).status_code == 200
    changed = _changes(before, dump_firestore())
    ext_docs = {p.rsplit("/", 1)[1] for p in changed if "/extensions/" in p}
    assert ext_docs == {"105", "159", "999"}
    meetings = [p for p in changed if p.startswith("meetings/")]
    assert len(meetings) == 2  # the removed one's Quick Meeting, the added one's
    assert len(changed) <= 3 + 2 + 3 + 2  # + up to 3 manifest shards, the PBX doc and the nonce


@pytest.mark.parametrize(
    "body",
    [
        {"extensions": [{"number": 101}]},
        {"extensions": [{"number": "1a"}]},
        {"extensions": [{"number": "101", "nickname": "x"}]},
        {"extensions": [{"number": "101"}, {"number": "101"}]},
        {"extensions": [{"number": "101", "first_name": "x" * 101}]},
        {"extensions": "all"},
        {},
    ],
)
def test_an_invalid_sync_is_400_and_changes_nothing(pbx: PbxClient, body: dict[str, Any]) -> None:
    pbx.sync([ext("101")])
    before = dump_firestore()
    assert_error(pbx.signed("PUT", "/sync", body), 400, "invalid_request")
    assert dump_firestore() == before


def test_an_oversized_sync_is_413_and_changes_nothing(pbx: PbxClient) -> None:
    before = dump_firestore()
    assert_error(pbx.signed("PUT", "/sync", raw=b"[" + b" " * (1024 * 1024) + b"]"), 413, "too_large")
    assert dump_firestore() == before
