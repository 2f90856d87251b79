"""schemathesis over the served OpenAPI document, with valid signatures on every call:
no 5xx, no response that violates the schema, every error in the contract's body."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance

from infra.pbx_client import PbxClient
from tests.helpers import ext, meeting, new_pbx
from webmeeting.domain.signing import signed_headers

pytestmark = pytest.mark.integration

DEEPER: dict[str, dict[str, Any]] = {
    "activate": {"license_key": "WM-DEV-LOCAL-0002", "pbx_fqdn": "fuzz.example.com", "webmeeting_fqdn": "meet.example.com"},
    "upsertMeeting": {"organizer": "101"},
}
MAX_EXAMPLES = 60  # per operation: 5 operations -> ~300 generated cases


def _load(platform: Any) -> Any:
    return schemathesis.openapi.from_url(platform.endpoints["pbx_api"] + "/openapi.json")


@pytest.fixture
def fuzz_pbx(api: str, license_key: str) -> PbxClient:
    pbx = new_pbx(api, license_key)
    assert pbx.sync([ext("101", vanity="ada"), ext("102")]).status_code == 200
    assert pbx.put_meeting("m-1", meeting("101")).status_code == 201
    return pbx


def test_openapi_is_served_and_matches_docs(platform: Any) -> None:
    served = requests.get(platform.endpoints["pbx_api"] + "/openapi.json", timeout=10).json()
    from webmeeting.cli.openapi import DOCS_SERVER
    from webmeeting.domain.openapi import pbx_openapi

    assert served == json.loads(json.dumps(pbx_openapi(platform.endpoints["portal"])))
    assert pbx_openapi(DOCS_SERVER)["paths"] == served["paths"]


@pytest.mark.parametrize("operation", ["activate", "sync", "upsertMeeting", "deleteMeeting", "listReports", "ackReport"])
def test_fuzz_operation(platform: Any, fuzz_pbx: PbxClient, operation: str) -> None:
    schema = _load(platform)
    op = schema.find_operation_by_id(operation)
    counted: dict[str, int] = {"cases": 0}

    strategy = op.as_strategy()

    @given(case=strategy)
    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def run(case: Any) -> None:
        kwargs = case.as_transport_kwargs(base_url=platform.endpoints["pbx_api"])
        method, url = kwargs["method"], kwargs["url"]
        body = b""
        if "json" in kwargs:
            payload = kwargs["json"]
            # every other case: make the generated body reach deeper than the first check
            if isinstance(payload, dict) and counted["cases"] % 2 == 0:
                payload = {**payload, **DEEPER.get(operation, {})}
            body = json.dumps(payload).encode()
        elif kwargs.get("data") is not None:
            body = kwargs["data"] if isinstance(kwargs["data"], bytes) else str(kwargs["data"]).encode()
        prepared = requests.Request(method, url, params=kwargs.get("params")).prepare()
        target = prepared.path_url
        headers = {"Content-Type": "application/json"} if body else {}
        if operation != "activate":
            headers.update(signed_headers(fuzz_pbx.pbx_id, fuzz_pbx.api_secret.encode(), method, target, body, int(time.time())))
        resp = fuzz_pbx.session.request(method, prepared.url, data=body, headers=headers, timeout=30)
        counted["cases"] += 1
        counted[str(resp.status_code)] = counted.get(str(resp.status_code), 0) + 1
        assert resp.status_code < 500, (resp.status_code, resp.text, target, body[:300])
        if resp.status_code >= 400:
            err = resp.json()
            assert set(err) == {"error"} and set(err["error"]) == {"code", "message"}, resp.text
        case.validate_response(resp, checks=[response_schema_conformance, status_code_conformance, content_type_conformance])

    run()
    print(operation, counted)
    assert counted["cases"] >= 20
