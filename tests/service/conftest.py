"""The service tier: the services and each Cloud Function in-process
(``functions_framework.create_app(...).test_client()``) against the Firestore emulator only: no
front door, no MCU, no other emulator. Everything else the code could reach is a closed port on
127.0.0.1, so nothing leaves the machine and a call that should not happen fails at once.

The tier owns this process's configuration while it runs and gives it back afterwards."""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import flask
import functions_framework
import pytest
import requests
from flask.testing import FlaskClient
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from infra.launcher import ROOT, Platform
from infra.pbx_client import PbxClient
from webmeeting import runtime, tokens
from webmeeting.adapters import firestore as fs
from webmeeting.adapters import storage, tasks
from webmeeting.adapters.mcu_identity import secret_digest
from webmeeting.services.licenses import seed_licenses

CLOSED = "127.0.0.1:9"  # the discard port: nothing listens
LICENSE = "WM-SERV-ICE0-0001"
MCU_ID, MCU_SECRET, MCU_URL = "mcu-svc-1", "mcu-svc-secret", "ws://127.0.0.1:9/ws"
PUBLIC_BASE_URL = "http://portal.test"


def _forget_clients() -> None:
    fs.reset_client()
    storage._client = None
    tasks._client = None


@pytest.fixture(scope="package")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The Firestore emulator, and this process pointed at it with the portal's settings."""
    saved = dict(os.environ)
    p = Platform(tmp_path_factory.mktemp("service"), project=f"wm-svc-{secrets.token_hex(3)}", mcu_count=0)
    p.endpoints["firestore_emulator"] = p.start_firestore()
    private, public = p.token_keys
    env = {
        "GOOGLE_CLOUD_PROJECT": p.project,
        "FIRESTORE_EMULATOR_HOST": p.endpoints["firestore_emulator"],
        "STORAGE_EMULATOR_HOST": f"http://{CLOSED}",
        "WEBMEETING_TASKS_EMULATOR_HOST": CLOSED,
        "WEBMEETING_TASKS_TARGET": "http://tasks.test",
        "WEBMEETING_TASKS_SECRET": p.tasks_secret,
        "WEBMEETING_SECRET_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "WEBMEETING_PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "WEBMEETING_TRUSTED_PROXY_COUNT": "0",  # no front door: the test client's address is the caller's
        "WEBMEETING_JOIN_TOKEN_KEY": private,
        "WEBMEETING_SMTP_HOST": "127.0.0.1",
        "WEBMEETING_SMTP_PORT": "9",
        "WEBMEETING_DNS_SERVER": CLOSED,
        "WEBMEETING_EGRESS_ALLOW": "",
        "WEBMEETING_MCUS": json.dumps(
            {
                MCU_ID: {
                    "region": "europe-west3",
                    "url": MCU_URL,
                    "latitude": 50.11,
                    "longitude": 8.68,
                    "capacity": 100,
                    "secret_sha256": secret_digest(MCU_SECRET),
                }
            }
        ),
    }
    for name in ("WEBMEETING_MCUS_FILE", "WEBMEETING_CLOCK_FILE", "WEBMEETING_TIME_OFFSET_S", "WEBMEETING_TASKS_AUTH"):
        os.environ.pop(name, None)
    runtime.use_environment(env)
    _forget_clients()
    p.endpoints["token_public_key"] = public
    try:
        yield p
    finally:
        p.stop()
        os.environ.clear()
        os.environ.update(saved)
        runtime.reset()
        _forget_clients()


@pytest.fixture(autouse=True)
def clean(store: Platform) -> Iterator[None]:
    db = fs.client()
    for col in db.collections():
        db.recursive_delete(col)
    seed_licenses([LICENSE], edition="professional", expires_at=_in_days(365), max_participants=10, recording=True)
    yield


def _in_days(days: int) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


FunctionClient = Callable[[str], FlaskClient]


@pytest.fixture
def function(store: Platform) -> FunctionClient:
    """A Cloud Function exactly as deployed (its folder's main.py), as a Flask test client."""

    def client(target: str) -> FlaskClient:
        source = ROOT / "functions" / target / "main.py"
        return functions_framework.create_app(target, str(source)).test_client()

    return client


class WsgiAdapter(HTTPAdapter):
    """``requests`` delivered to a WSGI app in this process (the project's own PBX client talks
    to the function without a socket)."""

    def __init__(self, app: flask.Flask) -> None:
        super().__init__()
        self.app = app

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        url = urlsplit(request.url or "")
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        client = self.app.test_client()
        got = client.open(
            url.path + (f"?{url.query}" if url.query else ""),
            base_url=f"{url.scheme}://{url.netloc}",
            method=request.method or "GET",
            headers=dict(request.headers),
            data=body,
        )
        out = requests.Response()
        out.status_code = got.status_code
        out._content = got.get_data()
        out.headers = CaseInsensitiveDict(dict(got.headers))
        out.url = request.url or ""
        out.request = request
        return out


@pytest.fixture
def pbx(function: FunctionClient) -> PbxClient:
    """The project's PBX client, talking to the ``pbx_api`` function in-process; activated."""
    app = functions_framework.create_app("pbx_api", str(ROOT / "functions" / "pbx_api" / "main.py"))
    client = PbxClient(f"{PUBLIC_BASE_URL}/api/pbx/v1")
    client.session.mount(PUBLIC_BASE_URL, WsgiAdapter(app))
    resp = client.activate(LICENSE, "pbx.example.com", "meet.example.com")
    assert resp.status_code == 201, resp.text
    return client


def dump() -> dict[str, dict[str, Any]]:
    """Every document, by path (subcollections included)."""
    out: dict[str, dict[str, Any]] = {}

    def walk(col: Any) -> None:
        for ref in col.list_documents():
            snap = ref.get()
            if snap.exists:
                out[ref.path] = fs.data(snap)
            for sub in ref.collections():
                walk(sub)

    for col in fs.client().collections():
        walk(col)
    return out


def join_token(store: Platform, meeting_key: str, role: str = "participant") -> str:
    claims = tokens.JoinClaims(
        meeting_key=meeting_key,
        participant_id="p" * 24,
        display_name="Grace",
        role=role,
        mcu_id=MCU_ID,
        max_participants=10,
        expires_at=tokens.expiry(datetime.now(UTC)),
    )
    return tokens.issue(store.token_keys[0], claims, datetime.now(UTC))
