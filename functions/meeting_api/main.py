"""Cloud Function ``meeting_api``: what the meeting page asks of the portal.

POST /api/meet/v1/join  {meeting_key, display_name, organizer_secret?, rejoin_secret?, failed_mcu_id?}
  -> {token, mcu_url, mcu_id, participant_id, rejoin_secret, role, expires_at}
POST /api/meet/v1/files?name=<file name>  raw bytes (Bearer <join token>)  share a file in the running session
GET  /api/meet/v1/files   (Bearer <join token>)  the session's files with 5-minute signed download URLs
GET  /api/meet/v1/dialin  (Authorization: Bearer <join token>; organizers only)
  -> {status: pending|ok|unavailable, conference_number, dial_in: [{country, number}]}
"""

from __future__ import annotations

import flask
import functions_framework

from webmeeting import errors, http, runtime, tokens
from webmeeting.domain.api import JoinRequest
from webmeeting.services import dialin, files
from webmeeting.services.join import join

PREFIX = "/api/meet/v1"
BODY_LIMIT = 4096  # a join is a few hundred bytes


def _claims(request: flask.Request) -> tokens.JoinClaims:
    """Who is asking: the join token the page holds (signed by the portal, short-lived)."""
    token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    s = runtime.settings()
    try:
        return tokens.verify(tokens.public_key_of(s.require("join_token_key")), token, None, runtime.clock().wall())
    except tokens.TokenError as exc:
        raise errors.Unauthenticated(str(exc)) from exc


def _files(request: flask.Request) -> flask.Response:
    if request.method == "GET":
        return http.json_response({"files": files.listing(_claims(request))})
    if request.method != "POST":
        return http.error_response(405, "method_not_allowed", f"{request.method} is not allowed here")
    claims = _claims(request)
    name = request.args.get("name", "")
    if not 1 <= len(name) <= 200 or set(request.args) - {"name"}:
        raise errors.InvalidRequest("the query is ?name=<file name> (1-200 characters)")
    data = http.read_body(request, files.max_bytes())
    return http.json_response(files.upload(claims, name, data, runtime.clock().now()), 201)


def _dialin(request: flask.Request) -> flask.Response:
    """Organizer-only data: the role is checked here, on the server, from the signed token."""
    if request.method != "GET":
        return http.error_response(405, "method_not_allowed", f"{request.method} is not allowed here")
    claims = _claims(request)
    if claims.role != "organizer":
        raise errors.Forbidden("dial-in data is for the organizer only", code="organizer_only")
    return http.json_response(dialin.for_organizer(claims.meeting_key))


@functions_framework.http
def meeting_api(request: flask.Request) -> flask.Response:
    try:
        path = request.path[len(PREFIX) :] if request.path.startswith(PREFIX) else request.path
        if path == "/dialin":
            return _dialin(request)
        if path == "/files":
            return _files(request)
        if path != "/join":
            raise errors.NotFound("no such endpoint")
        if request.method != "POST":
            return http.error_response(405, "method_not_allowed", f"{request.method} is not allowed here")
        body = http.read_body(request, BODY_LIMIT)
        req = http.parse(JoinRequest, body)
        clock = runtime.clock()
        return http.json_response(join(req, runtime.settings(), clock.now(), clock.wall()))
    except errors.WebmeetingError as exc:
        return http.from_error(exc)
    except Exception as exc:  # noqa: BLE001 - the edge: log it, never show a stack trace
        return http.internal_error(exc)
