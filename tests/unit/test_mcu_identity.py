"""MCU identity checks (the registry and the claims of a Google-signed ID token). The signature
check itself is google-auth's; here its verdict is given, and our rules on top are tested."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from webmeeting import errors, runtime
from webmeeting.adapters import mcu_identity
from webmeeting.domain.mcu import parse_registry

ACCOUNT = "wm-mcu-europe-west3@proj.iam.gserviceaccount.com"
REGISTRY = {
    "mcu-europe-west3-1": {
        "url": "wss://203.0.113.7.sslip.io/ws",
        "region": "europe-west3",
        "latitude": 50.1,
        "longitude": 8.7,
        "capacity": 200,
        "account": ACCOUNT,
    },
    "mcu-local": {
        "url": "ws://127.0.0.1:9/ws",
        "region": "local",
        "latitude": 0,
        "longitude": 0,
        "capacity": 10,
        "secret_sha256": mcu_identity.secret_digest("s3cret"),
    },
}
AUDIENCE = "https://meet.example.com/api/mcu/v1"


def claims(**over: Any) -> dict[str, Any]:
    gce = {"instance_name": "mcu-europe-west3-1", "project_id": "proj", "zone": "europe-west3-a"}
    return {"email": ACCOUNT, "email_verified": True, "aud": AUDIENCE, "google": {"compute_engine": gce}} | over


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("WEBMEETING_MCUS_FILE", raising=False)
    monkeypatch.setenv("WEBMEETING_MCUS", json.dumps(REGISTRY))
    runtime.reset()  # the configuration is read once per process: read it again
    yield
    runtime.reset()


def given(monkeypatch: pytest.MonkeyPatch, verdict: dict[str, Any] | Exception) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []

    def verify(token: str, audience: str) -> dict[str, Any]:
        seen.append((token, audience))
        if isinstance(verdict, Exception):
            raise verdict
        return verdict

    monkeypatch.setattr(mcu_identity, "_verify_google_id_token", verify)
    return seen


def test_an_instance_token_of_the_registered_account_proves_that_mcu(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = given(monkeypatch, claims())
    entry = mcu_identity.authenticate("mcu-europe-west3-1", "Bearer tok", AUDIENCE, "proj")
    assert entry.url == "wss://203.0.113.7.sslip.io/ws" and seen == [("tok", AUDIENCE)]


@pytest.mark.parametrize(
    "verdict",
    [
        claims(email="attacker@evil.iam.gserviceaccount.com"),
        claims(email_verified=False),
        claims(google={"compute_engine": {"instance_name": "mcu-europe-west3-2", "project_id": "proj"}}),  # a sibling VM
        claims(google={"compute_engine": {"instance_name": "mcu-europe-west3-1", "project_id": "other"}}),
        claims(google={}),  # a token without instance identity (format=standard, or not a VM)
        ValueError("Token expired"),
    ],
)
def test_anything_else_is_the_same_401(monkeypatch: pytest.MonkeyPatch, verdict: Any) -> None:
    given(monkeypatch, verdict)
    with pytest.raises(errors.Unauthenticated) as refused:
        mcu_identity.authenticate("mcu-europe-west3-1", "Bearer tok", AUDIENCE, "proj")
    assert refused.value.message == "MCU credentials required"


def test_local_mcus_prove_themselves_with_their_own_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = given(monkeypatch, claims())
    assert mcu_identity.authenticate("mcu-local", "Bearer s3cret", AUDIENCE, "proj").region == "local"
    for bad in ("Bearer nope", "s3cret", "", "Bearer "):
        with pytest.raises(errors.Unauthenticated):
            mcu_identity.authenticate("mcu-local", bad, AUDIENCE, "proj")
    with pytest.raises(errors.Unauthenticated):
        mcu_identity.authenticate("mcu-unknown", "Bearer s3cret", AUDIENCE, "proj")
    assert seen == []  # a secret-MCU never goes near the token verifier


def test_a_registry_entry_has_exactly_one_credential() -> None:
    both = {**REGISTRY["mcu-local"], "account": ACCOUNT}
    neither = {k: v for k, v in REGISTRY["mcu-local"].items() if k != "secret_sha256"}
    for entry in (both, neither):
        with pytest.raises(ValueError):
            parse_registry(json.dumps({"m": entry}))
    with pytest.raises(ValueError):
        parse_registry(json.dumps({"bad id!": REGISTRY["mcu-local"]}))
