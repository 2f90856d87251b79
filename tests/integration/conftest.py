"""One local platform per test session (real emulators, real function processes, the front
door); Firestore is wiped and licenses re-seeded before each test."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from infra.launcher import Platform
from infra.pbx_client import PbxClient
from webmeeting.adapters import firestore as fs

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    state = tmp_path_factory.mktemp("platform")
    clock_file = state / "clock-offset"
    clock_file.write_text("0")
    p = Platform(state, project=f"wm-test-{secrets.token_hex(3)}", extra_env={"WEBMEETING_CLOCK_FILE": str(clock_file)})
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
    host = platform.endpoints["firestore_emulator"]
    url = f"http://{host}/emulator/v1/projects/{platform.project}/databases/(default)/documents"
    requests.delete(url, timeout=10).raise_for_status()
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


def new_pbx(api: str, license_key: str, fqdn: str = "pbx.example.com", source_ip: str | None = None) -> PbxClient:
    client = PbxClient(api, source_ip=source_ip)
    resp = client.activate(license_key, fqdn, f"meet.{fqdn}")
    assert resp.status_code == 201, resp.text
    return client


@pytest.fixture
def pbx(api: str, license_key: str) -> PbxClient:
    return new_pbx(api, license_key)


def ext(
    number: str, first: str | None = "Ada", last: str | None = "Lovelace", email: str | None = None, vanity: str | None = None
) -> dict[str, Any]:
    return {
        "number": number,
        "first_name": first,
        "last_name": last,
        "email": email if email is not None else f"u{number}@example.com",
        "vanity_name": vanity,
    }


def meeting(organizer: str = "101", **overrides: Any) -> dict[str, Any]:
    start = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    body = {
        "organizer": organizer,
        "name": "Quarterly review",
        "comments": "Agenda attached",
        "scheduled_start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_minutes": 60,
        "participants": [{"name": "Grace Hopper", "email": "grace@example.org"}],
        "send_invitations": False,
    }
    body.update(overrides)
    return body


def dump_firestore() -> dict[str, Any]:
    """Every document in the database, by path (subcollections included)."""
    out: dict[str, Any] = {}

    def walk(collections: Any) -> None:
        for col in collections:
            for ref in col.list_documents():
                snap = ref.get()
                if snap.exists:
                    out[ref.path] = snap.to_dict()
                walk(ref.collections())

    walk(fs.client().collections())
    return out


def assert_error(resp: requests.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert "Traceback" not in resp.text
    if code:
        assert body["error"]["code"] == code, body
    return dict(body["error"])
