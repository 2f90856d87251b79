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


def _body(request: flask.Request) -> bytes:
    return http.read_body(request, runtime.settings().max_body_bytes)


def _no_body(body: bytes) -> None:
    if body:
        raise errors.InvalidRequest("this request takes no body")


def _openapi(request: flask.Request, _: re.Match[str]) -> flask.Response:
    return http.json_response(pbx_openapi(runtime.settings().public_base_url))


def _activate(request: flask.Request, _: re.Match[str]) -> flask.Response:
    s = runtime.settings()
    req = http.parse(ActivateRequest, _body(request))
    resp, _created = svc.activate(req, http.client_ip(request, s.trusted_proxy_count), runtime.clock().now(), s)
    return http.json_response(resp, 201)


def _sync(request: flask.Request, _: re.Match[str]) -> flask.Response:
    body = _body(request)
    ctx = _authenticated(request, body)
    return http.json_response(svc.sync(ctx, http.parse(SyncRequest, body), runtime.clock().now(), runtime.settings())[0])


def _meeting(request: flask.Request, m: re.Match[str]) -> flask.Response:
    body = _body(request)
    ctx = _authenticated(request, body)
    pbx_meeting_id, now, s = m.group(1), runtime.clock().now(), runtime.settings()
    if not MEETING_ID_RE.match(pbx_meeting_id):
        raise errors.InvalidRequest("pbx_meeting_id must be 1-64 characters of [A-Za-z0-9._~-]")
    if request.method == "PUT":
        meeting, created = svc.upsert_meeting(ctx, pbx_meeting_id, http.parse(MeetingRequest, body), now, s)
        return http.json_response(meeting, 201 if created else 200)
    _no_body(body)
    svc.delete_meeting(ctx, pbx_meeting_id, now, s)
    return flask.Response(status=204)


def _reports(request: flask.Request, _: re.Match[str]) -> flask.Response:
    body = _body(request)
    ctx = _authenticated(request, body)
    _no_body(body)
    status = request.args.get("status", "pending")
    if set(request.args) - {"status"} or status not in ("pending", "acked"):
        raise errors.InvalidRequest("the only query parameter is status=pending|acked")
    return http.json_response(svc.list_reports(ctx, status, runtime.clock().now()))


def _ack(request: flask.Request, m: re.Match[str]) -> flask.Response:
    body = _body(request)
    ctx = _authenticated(request, body)
    _no_body(body)
    if not REPORT_ID_RE.match(m.group(1)):
        raise errors.NotFound("unknown report")
    svc.ack_report(ctx, m.group(1), runtime.clock().now())
    return flask.Response(status=204)


ROUTES = http.Router(
    PREFIX,
    [
        http.route("/activate", {"POST"}, _activate),
        http.route("/sync", {"PUT"}, _sync),
        http.route("/meetings/([^/]+)", {"PUT", "DELETE"}, _meeting),
        http.route("/reports", {"GET"}, _reports),
        http.route("/reports/([^/]+)/ack", {"POST"}, _ack),
        http.route("/openapi.json", {"GET"}, _openapi),
    ],
)


@functions_framework.http
def pbx_api(request: flask.Request) -> flask.Response:
    return ROUTES(request)
