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

Locally authenticated by the shared secret header the task carries; in production Cloud Tasks
sends an OIDC token of the tasks service account, which the function's IAM (invoker role for
that account only) verifies before the request reaches this code.
"""

from __future__ import annotations

import hmac
from typing import Annotated

import flask
import functions_framework
from pydantic import BaseModel, ConfigDict, Field

from webmeeting import errors, http, runtime
from webmeeting.adapters import tasks
from webmeeting.adapters.tasks import SECRET_HEADER
from webmeeting.domain import retention as policy
from webmeeting.services import dialin, dns_checks, invitations, lifecycle, pbx_data, recordings, reports, retention
from webmeeting.services.pbx_api import tasks_target
from webmeeting.settings import Settings

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


class DnsCheckTask(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    pbx_ids: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]] = Field(min_length=1, max_length=dns_checks.BATCH)


class PurgeTask(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    meeting_key: str = Field(pattern=r"^[A-Za-z0-9_-]{16,64}$")


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


@functions_framework.http
def tasks_api(request: flask.Request) -> flask.Response:
    try:
        path = request.path[len(PREFIX) :] if request.path.startswith(PREFIX) else request.path
        known = ("/mail", "/dialin", "/report", "/report-push", "/sessions-sweep", "/convert", "/recordings-sweep")
        known += ("/retention", "/dns-checks", "/dns-check", "/meeting-purge")
        rule = path.removeprefix("/retention/") if path.startswith("/retention/") else None
        if path not in known and rule not in policy.BY_NAME:
            raise errors.NotFound("no such endpoint")
        if request.method != "POST":
            return http.error_response(405, "method_not_allowed", f"{request.method} is not allowed here")
        s = runtime.settings()
        _authenticate(request, s)
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
        target = tasks_target(s)
        if rule is not None:
            if not policy.BY_NAME[rule].swept:
                raise errors.NotFound(f"rule {rule} is enforced where the data changes, not by a sweep")
            http.parse(SweepTask, http.read_body(request, 4096) or b"{}")
            result = retention.run_rule(rule, s, now)
            if result["more"]:
                tasks.enqueue(s.project, "pbx", f"{target}/tasks/v1/retention/{rule}", {})
            return http.json_response(result)
        if path == "/retention":
            http.parse(SweepTask, http.read_body(request, 4096) or b"{}")
            return http.json_response({"rules": retention.fan_out(s, target)})
        if path == "/dns-checks":
            http.parse(SweepTask, http.read_body(request, 4096) or b"{}")
            return http.json_response({"pbxs": dns_checks.fan_out(s.project, target)})
        if path == "/meeting-purge":
            purge = http.parse(PurgeTask, http.read_body(request, 4096))
            return http.json_response({"outcome": pbx_data.run_purge(purge.meeting_key)})
        if path == "/dns-check":
            job = http.parse(DnsCheckTask, http.read_body(request, 16384))
            return http.json_response(dns_checks.check_batch(list(job.pbx_ids), now))
        if path == "/sessions-sweep":
            http.parse(SweepTask, http.read_body(request, 4096) or b"{}")
            return http.json_response(lifecycle.sweep(s, now))
        task = http.parse(MailTask, http.read_body(request, 4096))
        target = tasks_target(s)
        outcome = invitations.deliver(task.mail_id, task.attempt, s.project, target, now)
        return http.json_response({"outcome": outcome})
    except errors.WebmeetingError as exc:
        return http.from_error(exc)
    except Exception as exc:  # noqa: BLE001 - the edge: log it, never show a stack trace
        return http.internal_error(exc)
