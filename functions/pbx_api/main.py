"""Cloud Function ``pbx_api``: the PBX API v1 (contract: shared/contracts/pbx-api.md).

One HTTP function serves every route under ``/api/pbx/v1``; the load balancer (locally: the
front door) forwards that prefix here unchanged.
"""

from __future__ import annotations

import re

import flask
import functions_framework

from webmeeting import errors, http, runtime
from webmeeting.domain.api import PBX_MEETING_ID_RE, ActivateRequest, MeetingRequest, SyncRequest
from webmeeting.domain.openapi import pbx_openapi
from webmeeting.services import pbx_api as svc

PREFIX = "/api/pbx/v1"
REPORT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MEETING_ID_RE = re.compile(PBX_MEETING_ID_RE)


def _route(path: str) -> tuple[str, str | None]:
    """(route name, path parameter) for a path under the prefix."""
    rel = path[len(PREFIX) :] if path.startswith(PREFIX) else path
    if rel in ("/activate", "/sync", "/reports", "/openapi.json"):
        return rel.strip("/"), None
    if m := re.fullmatch(r"/meetings/([^/]+)", rel):
        return "meetings", m.group(1)
    if m := re.fullmatch(r"/reports/([^/]+)/ack", rel):
        return "ack", m.group(1)
    raise errors.NotFound("no such endpoint")


ALLOWED = {
    "activate": {"POST"},
    "sync": {"PUT"},
    "meetings": {"PUT", "DELETE"},
    "reports": {"GET"},
    "ack": {"POST"},
    "openapi.json": {"GET"},
}


def _authenticated(request: flask.Request, body: bytes) -> svc.AuthContext:
    s = runtime.settings()
    headers = {k.lower(): v for k, v in request.headers.items()}
    return svc.authenticate(
        headers,
        request.method,
        http.request_target(request),
        body,
        http.client_ip(request, s.trusted_proxy_count),
        runtime.clock().wall(),
        s,
    )


def _handle(request: flask.Request) -> flask.Response:
    route, param = _route(request.path)
    if request.method not in ALLOWED[route]:
        return http.error_response(405, "method_not_allowed", f"{request.method} is not allowed here")
    s = runtime.settings()
    now = runtime.clock().now()
    if route == "openapi.json":
        return http.json_response(pbx_openapi(s.public_base_url))
    body = http.read_body(request, s.max_body_bytes)

    if route == "activate":
        req = http.parse(ActivateRequest, body)
        resp, _created = svc.activate(req, http.client_ip(request, s.trusted_proxy_count), now, s)
        return http.json_response(resp, 201)

    ctx = _authenticated(request, body)
    if route == "sync":
        return http.json_response(svc.sync(ctx, http.parse(SyncRequest, body), now, s)[0])
    if route == "meetings":
        if not MEETING_ID_RE.match(param or ""):
            raise errors.InvalidRequest("pbx_meeting_id must be 1-64 characters of [A-Za-z0-9._~-]")
        if request.method == "PUT":
            meeting, created = svc.upsert_meeting(ctx, param or "", http.parse(MeetingRequest, body), now, s)
            return http.json_response(meeting, 201 if created else 200)
        _no_body(body)
        svc.delete_meeting(ctx, param or "", now, s)
        return flask.Response(status=204)
    if route == "reports":
        _no_body(body)
        status = request.args.get("status", "pending")
        if set(request.args) - {"status"} or status not in ("pending", "acked"):
            raise errors.InvalidRequest("the only query parameter is status=pending|acked")
        return http.json_response(svc.list_reports(ctx, status, now))
    _no_body(body)  # ack
    if not REPORT_ID_RE.match(param or ""):
        raise errors.NotFound("unknown report")
    svc.ack_report(ctx, param or "", now)
    return flask.Response(status=204)


def _no_body(body: bytes) -> None:
    if body:
        raise errors.InvalidRequest("this request takes no body")


@functions_framework.http
def pbx_api(request: flask.Request) -> flask.Response:
    try:
        return _handle(request)
    except errors.WebmeetingError as exc:
        return http.from_error(exc)
    except Exception as exc:  # noqa: BLE001 - the edge: log it, never show a stack trace
        return http.internal_error(exc)
