"""Cloud Function ``tasks_api``: handlers Cloud Tasks calls.

POST /tasks/v1/mail    {mail_id, attempt}          send one outbox mail (see services.invitations)
POST /tasks/v1/dialin  {meeting_key, session_id}   fetch a starting meeting's dial-in data from its PBX
POST /tasks/v1/report  {meeting_key, session_id}   a session is over: make its report (idempotent)
POST /tasks/v1/report-push {report_id, attempt}    push a report to its PBX, retrying with backoff
POST /tasks/v1/sessions-sweep {}                   scheduler: close dead MCUs' connections, late reports
POST /tasks/v1/convert {recording_id, converter, attempt}   start a converter job for a recording
POST /tasks/v1/recordings-sweep {}                 scheduler: converters that stopped, lost conversion tasks
POST /tasks/v1/retention {}                        scheduler: one task per retention rule
POST /tasks/v1/retention/<rule> {}                 one batch of one rule (re-enqueued while more is due)
POST /tasks/v1/dns-checks {}                       scheduler: DNS checks of every PBX, in batches
POST /tasks/v1/dns-check {pbx_ids: [...]}          one batch of DNS checks
POST /tasks/v1/meeting-purge {meeting_key}         what a meeting deleted through the PBX API left behind
POST /tasks/v1/pbx-delete {pbx_id}                 an admin's manual deletion of a PBX (from the console)

Locally authenticated by the shared secret header the task carries; in production Cloud Tasks
sends an OIDC token of the tasks service account, which the function's IAM (invoker role for
that account only) verifies before the request reaches this code.
"""

from __future__ import annotations

import hmac
import re
from datetime import datetime
from typing import Annotated, TypeVar

import flask
import functions_framework
from pydantic import BaseModel, ConfigDict, Field

from webmeeting import errors, http, runtime
from webmeeting.adapters import tasks
from webmeeting.adapters.tasks import SECRET_HEADER
from webmeeting.domain import retention as policy
from webmeeting.services import dialin, dns_checks, invitations, lifecycle, pbx_data, recordings, reports, retention
from webmeeting.settings import Settings

PREFIX = "/tasks/v1"
M = TypeVar("M", bound=BaseModel)


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


class DnsCheckTask(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    pbx_ids: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]] = Field(min_length=1, max_length=dns_checks.BATCH)


class PurgeTask(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    meeting_key: str = Field(pattern=r"^[A-Za-z0-9_-]{16,64}$")


class PbxDeleteTask(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    pbx_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")


class SweepTask(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class MailTask(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    mail_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    attempt: int = Field(ge=1, le=10_000)


def _authenticate(request: flask.Request, s: Settings) -> None:
    """Fails closed: production says ``WEBMEETING_TASKS_AUTH=iam`` (the function's IAM lets only
    the tasks and scheduler accounts invoke it); anything else needs the task secret, and a
    missing secret admits nobody."""
    if s.tasks_auth == "iam":
        return
    if not s.tasks_secret or not hmac.compare_digest(request.headers.get(SECRET_HEADER, "").encode(), s.tasks_secret.encode()):
        raise errors.Unauthenticated("task credentials required")


def _task(request: flask.Request, model: type[M], limit: int = 4096) -> tuple[Settings, datetime, M]:
    """The caller authenticated, the task's body validated (a sweep's may be empty)."""
    s = runtime.settings()
    _authenticate(request, s)
    body = http.read_body(request, limit)
    return s, runtime.clock().now(), http.parse(model, body or (b"{}" if model is SweepTask else body))


def _dialin(request: flask.Request, _: re.Match[str]) -> flask.Response:
    s, now, job = _task(request, DialInTask)
    return http.json_response({"outcome": dialin.fetch(job.meeting_key, job.session_id, s, now)})


def _report(request: flask.Request, _: re.Match[str]) -> flask.Response:
    s, now, job = _task(request, DialInTask)
    return http.json_response({"outcome": reports.finalize(job.meeting_key, job.session_id, s, now)})


def _report_push(request: flask.Request, _: re.Match[str]) -> flask.Response:
    s, now, push = _task(request, ReportPushTask)
    return http.json_response({"outcome": reports.push(push.report_id, push.attempt, s, now)})


def _convert(request: flask.Request, _: re.Match[str]) -> flask.Response:
    s, now, job = _task(request, ConvertTask)
    return http.json_response({"outcome": recordings.start_conversion(job.recording_id, job.converter, job.attempt, s, now)})


def _recordings_sweep(request: flask.Request, _: re.Match[str]) -> flask.Response:
    s, now, _job = _task(request, SweepTask)
    return http.json_response(recordings.sweep(s, now))


def _retention_rule(request: flask.Request, m: re.Match[str]) -> flask.Response:
    rule = m.group(1)
    if rule not in policy.BY_NAME:
        raise errors.NotFound("no such endpoint")
    s, now, _job = _task(request, SweepTask)
    if not policy.BY_NAME[rule].swept:
        raise errors.NotFound(f"rule {rule} is enforced where the data changes, not by a sweep")
    result = retention.run_rule(rule, s, now)
    if result["more"]:
        tasks.enqueue(s.project, "pbx", f"{s.tasks_url}/tasks/v1/retention/{rule}", {})
    return http.json_response(result)


def _retention(request: flask.Request, _: re.Match[str]) -> flask.Response:
    s, _now, _job = _task(request, SweepTask)
    return http.json_response({"rules": retention.fan_out(s, s.tasks_url)})


def _dns_checks(request: flask.Request, _: re.Match[str]) -> flask.Response:
    s, _now, _job = _task(request, SweepTask)
    return http.json_response({"pbxs": dns_checks.fan_out(s.project, s.tasks_url)})


def _dns_check(request: flask.Request, _: re.Match[str]) -> flask.Response:
    _s, now, job = _task(request, DnsCheckTask, 16384)
    return http.json_response(dns_checks.check_batch(list(job.pbx_ids), now))


def _meeting_purge(request: flask.Request, _: re.Match[str]) -> flask.Response:
    _s, _now, purge = _task(request, PurgeTask)
    return http.json_response({"outcome": pbx_data.run_purge(purge.meeting_key)})


def _pbx_delete(request: flask.Request, _: re.Match[str]) -> flask.Response:
    _s, _now, job = _task(request, PbxDeleteTask)
    return http.json_response({"deleted": pbx_data.purge_pbx(job.pbx_id)})  # idempotent: a retry finds nothing


def _sessions_sweep(request: flask.Request, _: re.Match[str]) -> flask.Response:
    s, now, _job = _task(request, SweepTask)
    return http.json_response(lifecycle.sweep(s, now))


def _mail(request: flask.Request, _: re.Match[str]) -> flask.Response:
    s, now, task = _task(request, MailTask)
    return http.json_response({"outcome": invitations.deliver(task.mail_id, task.attempt, s.project, s.tasks_url, now)})


POST = {"POST"}
ROUTES = http.Router(
    PREFIX,
    [
        http.route("/mail", POST, _mail),
        http.route("/dialin", POST, _dialin),
        http.route("/report", POST, _report),
        http.route("/report-push", POST, _report_push),
        http.route("/sessions-sweep", POST, _sessions_sweep),
        http.route("/convert", POST, _convert),
        http.route("/recordings-sweep", POST, _recordings_sweep),
        http.route("/retention", POST, _retention),
        http.route("/retention/([a-z_]{1,64})", POST, _retention_rule),
        http.route("/dns-checks", POST, _dns_checks),
        http.route("/dns-check", POST, _dns_check),
        http.route("/meeting-purge", POST, _meeting_purge),
        http.route("/pbx-delete", POST, _pbx_delete),
    ],
)


@functions_framework.http
def tasks_api(request: flask.Request) -> flask.Response:
    return ROUTES(request)
