"""Outside in, at the front door: only public routes are reachable, the route table's rate limits
hold per client address, and a client cannot choose the address the platform records."""

from __future__ import annotations

import secrets

import pytest
import requests

from infra.launcher import Platform
from infra.pbx_client import PbxClient, session_from
from tests.helpers import allowed_before_429, assert_error, assert_limit, dump_firestore
from webmeeting import routes
from webmeeting.adapters import firestore as fs

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("path", ["/tasks/v1/retention", "/tasks/v1/mail", "/tasks/v1/retention/recordings", "/tasks"])
def test_internal_routes_are_not_reachable_through_the_front_door(platform: Platform, path: str) -> None:
    before = dump_firestore()
    resp = requests.post(platform.endpoints["portal"] + path, json={}, timeout=10)
    assert_error(resp, 404, "not_found")
    assert dump_firestore() == before


def test_tasks_need_credentials_even_on_the_internal_url(platform: Platform) -> None:
    before = dump_firestore()
    resp = requests.post(f"{platform.upstreams['tasks_api']}/tasks/v1/retention", json={}, timeout=10)
    assert_error(resp, 401, "unauthenticated")
    assert dump_firestore() == before


def test_the_join_limit_of_the_route_table_holds_per_client_address(platform: Platform) -> None:
    limit = routes.limit_for("/api/meet/v1/join")
    assert limit is not None and limit.name == "join"
    url = platform.endpoints["portal"] + "/api/meet/v1/join"
    client = session_from("127.0.0.61")
    before = dump_firestore()
    assert_limit(*allowed_before_429(lambda: client.post(url, data=b"{}", timeout=10).status_code, limit.count), limit)
    assert_error(client.post(url, data=b"{}", timeout=10), 429, "rate_limited")
    assert session_from("127.0.0.62").post(url, data=b"{}", timeout=10).status_code == 400  # another client is not limited
    assert dump_firestore() == before


def test_meeting_link_guessing_is_rate_limited(platform: Platform) -> None:
    limit = routes.limit_for("/meet/x")
    assert limit is not None and limit.name == "meeting-links"
    client = session_from("127.0.0.63")
    base = platform.endpoints["portal"] + "/meet/"
    statuses: list[int] = []

    def guess() -> int:
        statuses.append(client.get(base + secrets.token_urlsafe(16), timeout=10).status_code)
        return statuses[-1]

    assert_limit(*allowed_before_429(guess, limit.count), limit)
    assert set(statuses[:-1]) == {404}


def test_a_client_cannot_choose_its_recorded_address(api: str, license_key: str) -> None:
    client = PbxClient(api, source_ip="127.0.0.64")
    client.session.headers["X-Forwarded-For"] = "203.0.113.9, 198.51.100.7"  # as if earlier proxies had added them
    assert client.activate(license_key, "pbx.spoof.example.com", "meet.spoof.example.com").status_code == 201
    assert fs.pbxs().document(client.pbx_id).get().get("ip") == "127.0.0.64"
