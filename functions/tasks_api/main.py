"""Cloud Function ``tasks_api``: handlers Cloud Tasks calls.

POST /tasks/v1/mail    {mail_id, attempt}          send one outbox mail (see services.invitations)
POST /tasks/v1/dialin  {meeting_key, session_id}   fetch a starting meeting's dial-in data from its PBX
POST /tasks/v1/report  {meeting_key, session_id}   a session is over: make its report (idempotent)
POST /tasks/v1/report-push {report_id, attempt}    push a report to its PBX, retrying with backoff
POST /tasks/v1/sessions-sweep {}                   scheduler: close dead MCUs' connections, late reports
POST /tasks/v1/convert {recording_id, converter, attempt}   start a converter job for a recording
POST /tasks/v1/recordings-sweep {}                 scheduler: converters that stopped, lost conversion tasks

Locally authenticated by the shared secret header the task carries; in production Cloud Tasks
sends an OIDC token of the tasks service account, which the function's IAM (invoker role for
that account only) verifies before the request reaches this code.
"""

from __future__ import annotations

import hmac
import os

import flask
import functions_framework
from pydantic import BaseModel, ConfigDict, Field

from webmeeting import errors, http, runtime
from webmeeting.adapters.tasks import SECRET_HEADER
from webmeeting.services import dialin, invitations, lifecycle, recordings, reports

PREFIX = "/tasks/v1"


class DialInTask(BaseModel):  # also the report task: one meeting session
    model_config = ConfigDict(extra="forbid", strict=True)

    meeting_key: str = Field(pattern=r"^[A-Za-z0-9_-]{16,64}$")
    session_id: str = Field(pattern=r"^[0-9a-f]{16}$")


class ReportPushTask(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    report_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    attempt: int = Field(ge=1, le=10_000)


class ConvertTask(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    recording_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    converter: str = Field(pattern=r"^[a-z0-9-]{1,63}$")
    attempt: int = Field(ge=1, le=10_000)


class SweepTask(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class MailTask(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    mail_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    attempt: int = Field(ge=1, le=10_000)


def _authenticate(request: flask.Request) -> None:
    secret = os.environ.get("WEBMEETING_TASKS_SECRET", "")
    if not secret:
        return  # production: only the tasks service account can invoke this function (IAM)
    if not hmac.compare_digest(request.headers.get(SECRET_HEADER, "").encode(), secret.encode()):
        raise errors.Unauthenticated("task credentials required")


@functions_framework.http
def tasks_api(request: flask.Request) -> flask.Response:
    try:
        path = request.path[len(PREFIX) :] if request.path.startswith(PREFIX) else request.path
        if path not in ("/mail", "/dialin", "/report", "/report-push", "/sessions-sweep", "/convert", "/recordings-sweep"):
            raise errors.NotFound("no such endpoint")
        if request.method != "POST":
            return http.error_response(405, "method_not_allowed", f"{request.method} is not allowed here")
        _authenticate(request)
        s = runtime.settings()
        now = runtime.clock().now()
        if path == "/dialin":
            job = http.parse(DialInTask, http.read_body(request, 4096))
            return http.json_response({"outcome": dialin.fetch(job.meeting_key, job.session_id, s, now)})
        if path == "/report":
            job = http.parse(DialInTask, http.read_body(request, 4096))
            return http.json_response({"outcome": reports.finalize(job.meeting_key, job.session_id, s, now)})
        if path == "/report-push":
            push = http.parse(ReportPushTask, http.read_body(request, 4096))
            return http.json_response({"outcome": reports.push(push.report_id, push.attempt, s, now)})
        if path == "/convert":
            job = http.parse(ConvertTask, http.read_body(request, 4096))
            return http.json_response(
                {"outcome": recordings.start_conversion(job.recording_id, job.converter, job.attempt, s, now)}
            )
        if path == "/recordings-sweep":
            http.parse(SweepTask, http.read_body(request, 4096) or b"{}")
            return http.json_response(recordings.sweep(s, now))
        if path == "/sessions-sweep":
            http.parse(SweepTask, http.read_body(request, 4096) or b"{}")
            return http.json_response(lifecycle.sweep(s, now))
        task = http.parse(MailTask, http.read_body(request, 4096))
        target = os.environ.get("WEBMEETING_TASKS_TARGET", s.public_base_url)
        outcome = invitations.deliver(task.mail_id, task.attempt, s.project, target, now)
        return http.json_response({"outcome": outcome})
    except errors.WebmeetingError as exc:
        return http.from_error(exc)
    except Exception as exc:  # noqa: BLE001 - the edge: log it, never show a stack trace
        return http.internal_error(exc)
