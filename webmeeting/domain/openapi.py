"""The OpenAPI 3.1 document of the PBX API v1, generated from the pydantic models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from webmeeting.domain import api

SIGNED_HEADERS = [
    ("X-PBX-Id", "The pbx_id returned by activation.", {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}),
    (
        "X-Timestamp",
        "Unix seconds; rejected when more than 300 s from the platform's clock.",
        {"type": "string", "pattern": "^[0-9]{1,12}$"},
    ),
    (
        "X-Nonce",
        "At least 16 random printable characters, never reused within the window.",
        {"type": "string", "minLength": 16, "maxLength": 128},
    ),
    (
        "X-Signature",
        "Lowercase hex HMAC-SHA256 keyed with the api_secret string as issued, over "
        "METHOD\\nPATH_WITH_QUERY\\nX-Timestamp\\nX-Nonce\\nhex(sha256(body)).",
        {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    ),
]

ERRORS = {
    "400": "Malformed JSON, wrong types, unknown or missing fields, values out of range (invalid_request).",
    "401": "Missing or invalid signature, stale timestamp, reused nonce, unknown PBX (unauthenticated).",
    "403": "License invalid (license_invalid) or request from another IP (ip_mismatch).",
    "404": "Unknown meeting or report (not_found).",
    "405": "Method not allowed on this path (method_not_allowed).",
    "409": "FQDN or license already bound elsewhere (conflict).",
    "413": "Body over 1 MiB (too_large).",
    "429": "Rate limited (rate_limited).",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*codes: str) -> dict[str, Any]:
    return {c: {"description": ERRORS[c], **_json(_ref("ErrorBody"))} for c in codes}


def _signed_params() -> list[dict[str, Any]]:
    return [{"name": n, "in": "header", "required": True, "description": d, "schema": s} for n, d, s in SIGNED_HEADERS]


def pbx_openapi(server_url: str) -> dict[str, Any]:
    inputs: list[type[BaseModel]] = [api.ActivateRequest, api.SyncRequest, api.MeetingRequest]
    outputs: list[type[BaseModel]] = [
        api.ActivateResponse,
        api.SyncResponse,
        api.MeetingResponse,
        api.ReportsResponse,
        api.ErrorBody,
    ]
    _, schemas = models_json_schema(
        [(m, "validation") for m in inputs] + [(m, "serialization") for m in outputs],
        ref_template="#/components/schemas/{model}",
    )
    components = schemas.get("$defs", {})
    components["MeetingRequest"]["properties"]["scheduled_start"]["pattern"] = "(Z|[+-]00:00)$"
    meeting_id = {
        "name": "pbx_meeting_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": api.PBX_MEETING_ID_RE},
    }
    signed = _signed_params()
    common = ("400", "401", "403", "413", "429")
    paths: dict[str, Any] = {
        "/activate": {
            "post": {
                "operationId": "activate",
                "summary": "Activate a PBX: bind its FQDN to the license, record its IP, issue the API secret.",
                "requestBody": {"required": True, **_json(_ref("ActivateRequest"))},
                "responses": {
                    "201": {"description": "Activated; api_secret is shown only here.", **_json(_ref("ActivateResponse"))},
                    **_errors("400", "403", "409", "413", "429"),
                },
            }
        },
        "/sync": {
            "put": {
                "operationId": "sync",
                "summary": "The full current list of the PBX's extensions.",
                "parameters": signed,
                "requestBody": {"required": True, **_json(_ref("SyncRequest"))},
                "responses": {"200": {"description": "Synced.", **_json(_ref("SyncResponse"))}, **_errors(*common)},
            }
        },
        "/meetings/{pbx_meeting_id}": {
            "put": {
                "operationId": "upsertMeeting",
                "summary": "Create or update a meeting.",
                "parameters": [meeting_id, *signed],
                "requestBody": {"required": True, **_json(_ref("MeetingRequest"))},
                "responses": {
                    "200": {"description": "Updated.", **_json(_ref("MeetingResponse"))},
                    "201": {"description": "Created.", **_json(_ref("MeetingResponse"))},
                    **_errors(*common),
                },
            },
            "delete": {
                "operationId": "deleteMeeting",
                "summary": "Delete a meeting and all that hangs on it.",
                "parameters": [meeting_id, *signed],
                "responses": {"204": {"description": "Deleted."}, **_errors(*common, "404")},
            },
        },
        "/reports": {
            "get": {
                "operationId": "listReports",
                "summary": "Meeting reports for this PBX.",
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["pending", "acked"]},
                    },
                    *signed,
                ],
                "responses": {"200": {"description": "Reports.", **_json(_ref("ReportsResponse"))}, **_errors(*common)},
            }
        },
        "/reports/{report_id}/ack": {
            "post": {
                "operationId": "ackReport",
                "summary": "The PBX has stored the report.",
                "parameters": [
                    {
                        "name": "report_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                    },
                    *signed,
                ],
                "responses": {"204": {"description": "Acknowledged."}, **_errors(*common, "404")},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "webmeeting PBX API",
            "version": "1.0.0",
            "description": "The API a PBX uses to activate, sync its users and run its meetings. "
            'Every error answers {"error": {"code", "message"}}.',
        },
        "servers": [{"url": f"{server_url}/api/pbx/v1"}],
        "paths": paths,
        "components": {"schemas": components},
    }
