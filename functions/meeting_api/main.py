"""Cloud Function ``meeting_api``: what the meeting page asks of the portal.

POST /api/meet/v1/join  {meeting_key, display_name, organizer_secret?, rejoin_secret?, failed_mcu_id?}
  -> {token, mcu_url, mcu_id, participant_id, rejoin_secret, role, expires_at}
POST /api/meet/v1/files?ext=<extension>  raw bytes (Bearer <join token>)  share a file in the running session
GET  /api/meet/v1/files   (Bearer <join token>)  the session's files with 5-minute signed download URLs
GET/POST /api/meet/v1/polls, PUT/DELETE /polls/<id>, POST /polls/<id>/run   (organizer)
GET  /api/meet/v1/runs, POST /runs/<id>/vote {option}   (everyone in the meeting; one vote each)
GET  /api/meet/v1/runs/<id>/report.pdf   (organizer)
POST /api/meet/v1/invitations {participants: [{name, email}]}  (organizer) invite people from the meeting
POST /api/meet/v1/pdfs (organizer, raw PDF), GET /pdfs (everyone), DELETE /pdfs/<id> (organizer)
GET  /api/meet/v1/dialin  (Authorization: Bearer <join token>; organizers only)
POST /api/meet/v1/recording {action: start|stop}  (organizer, license permitting) -> {recording_id, grant}
  -> {status: pending|ok|unavailable, conference_number, dial_in: [{country, number}]}
"""

from __future__ import annotations

import re

import flask
import functions_framework
from pydantic import BaseModel, ConfigDict, Field

from webmeeting import errors, http, runtime, tokens
from webmeeting.domain.api import InvitedPerson, JoinRequest, RecordingAction
from webmeeting.domain.polls import PollDraft, Vote
from webmeeting.services import dialin, files, invitations, polls, recordings, sessions
from webmeeting.services.join import join

PREFIX = "/api/meet/v1"
ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
BODY_LIMIT = 4096  # a join is a few hundred bytes


def _claims(request: flask.Request) -> tokens.JoinClaims:
    """Who is asking: the join token the page holds (signed by the portal, short-lived)."""
    token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    s = runtime.settings()
    try:
        return tokens.verify(tokens.public_key_of(s.require("join_token_key")), token, None, runtime.clock().wall())
    except tokens.TokenError as exc:
        raise errors.Unauthenticated(str(exc)) from exc


def _present(request: flask.Request) -> tokens.JoinClaims:
    """The caller's claims, if an MCU has confirmed their connection to the meeting: a token
    from /join alone lists, downloads, shares and votes nothing."""
    claims = _claims(request)
    if not sessions.is_present(claims.meeting_key, claims.participant_id):
        raise errors.Forbidden("join the meeting first: this needs your live connection", code="not_connected")
    return claims


def _files(request: flask.Request, _: re.Match[str]) -> flask.Response:
    if request.method == "GET":
        return http.json_response({"files": files.listing(_present(request))})
    claims = _claims(request)
    ext = request.args.get("ext", "")
    if not re.fullmatch(r"[A-Za-z0-9]{1,8}", ext) or set(request.args) - {"ext"}:
        raise errors.InvalidRequest("the query is ?ext=<file extension> (the file's name is never sent)")
    data = http.read_body(request, files.max_bytes())
    _present(request)
    return http.json_response(files.upload(claims, ext, data, runtime.clock().now()), 201)


class InviteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    participants: list[InvitedPerson] = Field(min_length=1, max_length=invitations.MEETING_INVITES_MAX)


def _invite(request: flask.Request, _: re.Match[str]) -> flask.Response:
    claims = _claims(request)
    body = http.parse(InviteRequest, http.read_body(request, 32768))
    people = [p.model_dump() for p in body.participants]
    count = invitations.invite_from_meeting(claims, people, runtime.settings(), runtime.clock().now())
    return http.json_response({"invited": count}, 201)


def _pdfs(request: flask.Request, _: re.Match[str]) -> flask.Response:
    """The organizer prepares documents before anyone connects; everyone else sees them only
    from inside the meeting."""
    claims = _claims(request)
    if request.method == "GET":
        if claims.role != "organizer":
            _present(request)
        return http.json_response({"pdfs": files.list_pdfs(claims)})
    return http.json_response(files.share_pdf(claims, http.read_body(request, files.max_bytes()), runtime.clock().now()), 201)


def _pdf(request: flask.Request, m: re.Match[str]) -> flask.Response:
    files.unshare_pdf(_claims(request), m.group(1))
    return flask.Response(status=204)


def _polls(request: flask.Request, _: re.Match[str]) -> flask.Response:
    claims = _claims(request)
    if request.method == "GET":
        return http.json_response({"polls": polls.list_polls(claims)})
    draft = http.parse(PollDraft, http.read_body(request, 16384))
    return http.json_response(polls.create(claims, draft, runtime.clock().now()), 201)


def _poll(request: flask.Request, m: re.Match[str]) -> flask.Response:
    claims = _claims(request)
    if request.method == "PUT":
        draft = http.parse(PollDraft, http.read_body(request, 16384))
        return http.json_response(polls.edit(claims, m.group(1), draft, runtime.clock().now()))
    polls.delete(claims, m.group(1))
    return flask.Response(status=204)


def _poll_run(request: flask.Request, m: re.Match[str]) -> flask.Response:
    return http.json_response(polls.run(_claims(request), m.group(1), runtime.clock().now()), 201)


def _runs(request: flask.Request, _: re.Match[str]) -> flask.Response:
    return http.json_response({"runs": polls.results(_present(request))})


def _vote(request: flask.Request, m: re.Match[str]) -> flask.Response:
    claims = _present(request)
    polls.vote(claims, m.group(1), http.parse(Vote, http.read_body(request, 1024)).option, runtime.clock().now())
    return flask.Response(status=204)


def _poll_report(request: flask.Request, m: re.Match[str]) -> flask.Response:
    pdf = polls.report_pdf(_claims(request), m.group(1))
    headers = {
        "Content-Type": "application/pdf",
        "Content-Disposition": 'attachment; filename="poll-results.pdf"',
        **http.NO_STORE,
    }
    return flask.Response(pdf, headers=headers)


def _dialin(request: flask.Request, _: re.Match[str]) -> flask.Response:
    """Organizer-only data: the role is checked here, on the server, from the signed token."""
    claims = _claims(request)
    claims.require_organizer("dial-in data is for the organizer only")
    _present(request)
    return http.json_response(dialin.for_organizer(claims.meeting_key))


def _recording(request: flask.Request, _: re.Match[str]) -> flask.Response:
    claims = _claims(request)
    action = http.parse(RecordingAction, http.read_body(request, 256)).action
    claims.require_organizer("only the organizer records")
    _present(request)
    s = runtime.settings()
    if action == "start":
        return http.json_response(recordings.start(claims, s, runtime.clock().now()))
    return http.json_response(recordings.stop(claims, s))


def _join(request: flask.Request, _: re.Match[str]) -> flask.Response:
    req = http.parse(JoinRequest, http.read_body(request, BODY_LIMIT))
    clock = runtime.clock()
    return http.json_response(join(req, runtime.settings(), clock.now(), clock.wall()))


ID = "([A-Za-z0-9_-]{8,64})"
ROUTES = http.Router(
    PREFIX,
    [
        http.route("/join", {"POST"}, _join),
        http.route("/dialin", {"GET"}, _dialin),
        http.route("/recording", {"POST"}, _recording),
        http.route("/files", {"GET", "POST"}, _files),
        http.route("/invitations", {"POST"}, _invite),
        http.route("/pdfs", {"GET", "POST"}, _pdfs),
        http.route(f"/pdfs/{ID}", {"DELETE"}, _pdf),
        http.route("/polls", {"GET", "POST"}, _polls),
        http.route(f"/polls/{ID}", {"PUT", "DELETE"}, _poll),
        http.route(f"/polls/{ID}/run", {"POST"}, _poll_run),
        http.route("/runs", {"GET"}, _runs),
        http.route(f"/runs/{ID}/vote", {"POST"}, _vote),
        http.route(f"/runs/{ID}/report.pdf", {"GET"}, _poll_report),
    ],
)


@functions_framework.http
def meeting_api(request: flask.Request) -> flask.Response:
    return ROUTES(request)
