"""Test tiers: tests/unit (pure, milliseconds), tests/integration (the launched platform on the
real emulators, over HTTP), tests/e2e (real browsers), tests/platform (make run itself).

One local platform per test session (real emulators, function processes, front door, MCUs);
Firestore is wiped and licenses re-seeded before each test that uses it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.launcher import Platform
from infra.pbx_client import PbxClient
from tests.helpers import build_geo_database, new_pbx
from webmeeting.adapters import firestore as fs


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    state = tmp_path_factory.mktemp("platform")
    clock_file = state / "clock-offset"
    clock_file.write_text("0")
    geo_db = build_geo_database(state / "test-city.mmdb")
    env = {
        "WEBMEETING_CLOCK_FILE": str(clock_file),
        "WEBMEETING_GEOIP_DB": str(geo_db),
        "WEBMEETING_MCU_STALE_S": "10",
        "WEBMEETING_SESSION_GRACE_S": "2",
        "WEBMEETING_CONVERT_LEASE_S": "4",
    }
    p = Platform(state, project=f"wm-test-{secrets.token_hex(3)}", extra_env=env)
    p.start()
    yield p
    p.stop()


@pytest.fixture(scope="session")
def clock_file(platform: Platform) -> Path:
    return Path(platform.extra_env["WEBMEETING_CLOCK_FILE"])


@pytest.fixture(autouse=True)
def clean(request: pytest.FixtureRequest) -> Iterator[None]:
    if "platform" not in request.fixturenames:
        yield
        return
    platform: Platform = request.getfixturevalue("platform")
    db = fs.client()
    for col in db.collections():
        if col.id != "mcus":  # the MCUs' registrations stay: they heartbeat every 2 s, not per test
            db.recursive_delete(col)
    platform.seed()
    clock = Path(platform.extra_env["WEBMEETING_CLOCK_FILE"])
    clock.write_text("0")
    yield
    clock.write_text("0")


@pytest.fixture
def api(platform: Platform) -> str:
    return str(platform.endpoints["pbx_api"])


@pytest.fixture
def license_key(platform: Platform) -> str:
    return str(platform.endpoints["dev_license_keys"][0])


@pytest.fixture
def pbx(api: str, license_key: str) -> PbxClient:
    return new_pbx(api, license_key)
