"""429 from the front door, per client address, before the function runs."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests

from infra.launcher import ROOT, Platform, Proc, free_port
from infra.pbx_client import session_from
from tests.helpers import assert_error, dump_firestore

pytestmark = pytest.mark.integration


def test_a_client_over_the_limit_gets_429_and_changes_nothing(platform: Platform) -> None:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "infra.frontdoor",
        "--port",
        str(port),
        "--limit",
        "/api/pbx/v1=0.5:3",
        "--route",
        f"/api/pbx/v1={platform.upstreams['pbx_api']}",
    ]
    proc = subprocess.Popen(argv, cwd=ROOT)
    try:
        url = f"http://127.0.0.1:{port}/api/pbx/v1/openapi.json"
        platform.wait_ready(Proc("frontdoor-limited", proc, platform.state_dir / "logs" / "none.log"), platform.http_ok(url))
        before = dump_firestore()
        statuses = [requests.get(url, timeout=5).status_code for _ in range(6)]
        assert statuses.count(429) >= 2 and statuses[0] == 200
        assert_error(requests.post(url.replace("openapi.json", "activate"), json={}, timeout=5), 429, "rate_limited")
        assert session_from("127.0.0.2").get(url, timeout=5).status_code == 200  # another client is not limited
        assert dump_firestore() == before
    finally:
        proc.terminate()
        proc.wait(timeout=10)
