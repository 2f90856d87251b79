"""The license registry's admin CLI against the emulator."""

from __future__ import annotations

import pytest
import requests
from typer.testing import CliRunner

from infra.pbx_client import PbxClient
from tests.helpers import assert_error, dump_firestore, ext, meeting, new_pbx
from webmeeting.cli.admin import app

pytestmark = pytest.mark.integration
runner = CliRunner()


def test_add_list_revoke(platform, api: str) -> None:  # type: ignore[no-untyped-def]
    added = runner.invoke(
        app, ["licenses", "add", "--edition", "enterprise", "--days", "30", "--max-participants", "50", "--no-recording"]
    )
    assert added.exit_code == 0, added.output
    key = added.output.strip()
    listed = runner.invoke(app, ["licenses", "list"], env={"COLUMNS": "200"})
    assert key in listed.output and "enterprise" in listed.output and "valid" in listed.output
    pbx = PbxClient(api)
    body = pbx.activate(key, "pbx.example.com", "meet.example.com").json()
    assert body["license"] | {"expires_at": None} == {
        "edition": "enterprise",
        "max_participants": 50,
        "recording": False,
        "expires_at": None,
    }
    assert runner.invoke(app, ["licenses", "revoke", key]).exit_code == 0
    assert "revoked" in runner.invoke(app, ["licenses", "list"], env={"COLUMNS": "200"}).output
    assert_error(PbxClient(api).activate(key, "pbx.example.com", "meet.example.com"), 403, "license_invalid")


@pytest.mark.retention("pbx_unbound")
def test_unbind_deletes_all_of_the_pbxs_data_and_frees_the_license(api: str, license_key: str) -> None:
    pbx = new_pbx(api, license_key)
    quick = pbx.sync([ext("101", vanity="ada")]).json()["extensions"][0]["quick_meeting_url"]
    m = pbx.put_meeting("m1", meeting("101")).json()
    result = runner.invoke(app, ["licenses", "unbind", "pbx.example.com"])
    assert result.exit_code == 0, result.output
    for url in (quick, m["url"], m["vanity_url"]):
        assert requests.get(url, timeout=10).status_code == 404
    leftovers = [p for p, d in dump_firestore().items() if pbx.pbx_id in p or d.get("pbx_id") == pbx.pbx_id]
    assert leftovers == []
    assert_error(pbx.sync([]), 401, "unauthenticated")
    assert new_pbx(api, license_key, "other.example.com").pbx_id != pbx.pbx_id


def test_unknown_keys_fail_with_a_message(platform) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(app, ["licenses", "revoke", "WM-NOPE-NOPE-0000"])
    assert result.exit_code == 1 and "no license" in result.output
