"""PBXs around the world get their closest MCU; deprecation moves joins at once and PBXs at
their next sync. PBX addresses are loopback aliases located by the tests' own City database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from typer.testing import CliRunner

from infra.launcher import Platform
from tests.helpers import ext, new_pbx
from webmeeting.adapters import firestore as fs
from webmeeting.cli.admin import app

pytestmark = pytest.mark.integration
runner = CliRunner()


@pytest.fixture
def restore_mcus() -> Iterator[None]:
    yield
    for mcu_id in ("mcu-eu-1", "mcu-us-1"):
        fs.client().collection("mcus").document(mcu_id).update({"status": "active"})


@pytest.mark.parametrize(
    ("ip", "expected_mcu", "source"),
    [
        ("127.0.0.2", "mcu-eu-1", "geoip"),  # Paris -> Frankfurt
        ("127.0.0.3", "mcu-us-1", "geoip"),  # Chicago -> Iowa
        ("127.0.0.4", "mcu-us-1", "geoip"),  # Sydney: Iowa 14,193 km, Frankfurt 16,483 km
        ("127.0.0.5", "mcu-us-1", "geoip"),  # Sao Paulo: Iowa 8,812 km, Frankfurt 9,829 km
        ("127.0.0.1", "mcu-eu-1", "default:private"),  # unlocatable: the default location (Frankfurt)
    ],
)
def test_activation_assigns_the_closest_mcu(api: str, license_key: str, ip: str, expected_mcu: str, source: str) -> None:
    pbx = new_pbx(api, license_key, source_ip=ip)
    stored = fs.data(fs.pbxs().document(pbx.pbx_id).get())
    assert stored["mcu_id"] == expected_mcu and stored["location_source"] == source and stored["ip"] == ip


def test_deprecation_redirects_joins_at_once_and_moves_the_pbx_at_its_next_sync(
    platform: Platform, api: str, license_key: str, restore_mcus: None
) -> None:
    pbx = new_pbx(api, license_key, source_ip="127.0.0.2")  # Paris
    key = pbx.sync([ext("101")]).json()["extensions"][0]["quick_meeting_url"].rsplit("/", 1)[1]
    join = platform.endpoints["portal"] + "/api/meet/v1/join"
    assert requests.post(join, json={"meeting_key": key, "display_name": "A"}, timeout=10).json()["mcu_id"] == "mcu-eu-1"

    result = runner.invoke(app, ["mcus", "deprecate", "mcu-eu-1"])
    assert result.exit_code == 0, result.output
    assert fs.data(fs.pbxs().document(pbx.pbx_id).get())["mcu_id"] == "mcu-eu-1"  # nothing changes until the sync
    assert requests.post(join, json={"meeting_key": key, "display_name": "B"}, timeout=10).json()["mcu_id"] == "mcu-us-1"

    synced = pbx.sync([ext("101")]).json()
    assert synced["mcu"]["id"] == "mcu-us-1"
    assert fs.data(fs.pbxs().document(pbx.pbx_id).get())["mcu_id"] == "mcu-us-1"

    listed = runner.invoke(app, ["mcus", "list"], env={"COLUMNS": "250"}).output
    assert "mcu-eu-1" in listed and "deprecated" in listed
    assert runner.invoke(app, ["mcus", "restore", "mcu-eu-1"]).exit_code == 0
    assert pbx.sync([ext("101")]).json()["mcu"]["id"] == "mcu-eu-1"  # the closest again


def test_no_mcu_at_all_is_a_clear_503_at_join(platform: Platform, api: str, license_key: str, restore_mcus: None) -> None:
    pbx = new_pbx(api, license_key)
    key = pbx.sync([ext("101")]).json()["extensions"][0]["quick_meeting_url"].rsplit("/", 1)[1]
    for mcu_id in ("mcu-eu-1", "mcu-us-1"):
        runner.invoke(app, ["mcus", "deprecate", mcu_id])
    resp = requests.post(
        platform.endpoints["portal"] + "/api/meet/v1/join", json={"meeting_key": key, "display_name": "A"}, timeout=10
    )
    assert resp.status_code == 503 and resp.json()["error"]["code"] == "unavailable"
    assert "deprecated" in resp.json()["error"]["message"]
    assert pbx.sync([ext("101")]).json()["mcu"] is None


def test_a_client_cannot_move_a_meeting_off_a_healthy_mcu(platform: Platform, api: str, license_key: str) -> None:
    pbx = new_pbx(api, license_key)
    key = pbx.sync([ext("101")]).json()["extensions"][0]["quick_meeting_url"].rsplit("/", 1)[1]
    body = {"meeting_key": key, "display_name": "A", "failed_mcu_id": "mcu-eu-1"}
    resp = requests.post(platform.endpoints["portal"] + "/api/meet/v1/join", json=body, timeout=10)
    assert resp.json()["mcu_id"] == "mcu-eu-1"  # probed, alive: stays
