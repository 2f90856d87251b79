"""Cloud Function ``mcu_api``: the MCUs' calls to the portal.

POST /api/mcu/v1/heartbeat  {id, region, url, capacity, load, latitude, longitude, workers}
POST /api/mcu/v1/events     {events: [{id, type, meeting_key, participant_id, at, ...}]}
POST /api/mcu/v1/recordings/<id>/uploaded  {recording_id, meeting_key, started_at, stopped_at, tracks}

Authenticated by ``Authorization: Bearer <WEBMEETING_MCU_SECRET>`` and ``X-MCU-Id`` (in
production the MCU's service-account OIDC token is verified by the platform in front).
"""

from __future__ import annotations

import hmac
import re

import flask
import functions_framework

from webmeeting import errors, http, runtime
from webmeeting.domain.api import McuEvents, McuHeartbeat, RecordingUploaded
from webmeeting.services import lifecycle, recordings
from webmeeting.services.mcus import record_heartbeat
from webmeeting.services.sessions import reconcile_live, record_events

PREFIX = "/api/mcu/v1"
BODY_LIMIT = 512 * 1024
UPLOADED_RE = re.compile(r"^/recordings/([0-9a-f]{32})/uploaded$")


def _authenticate(request: flask.Request) -> str:
    secret = runtime.settings().require("mcu_secret")
    presented = request.headers.get("Authorization", "").removeprefix("Bearer ")
    mcu_id = request.headers.get("X-MCU-Id", "")
    if not mcu_id or not hmac.compare_digest(presented.encode(), secret.encode()):
        raise errors.Unauthenticated("MCU credentials required")
    return mcu_id


@functions_framework.http
def mcu_api(request: flask.Request) -> flask.Response:
    try:
        path = request.path[len(PREFIX) :] if request.path.startswith(PREFIX) else request.path
        uploaded = UPLOADED_RE.match(path)
        if path not in ("/heartbeat", "/events") and not uploaded:
            raise errors.NotFound("no such endpoint")
        if request.method != "POST":
            return http.error_response(405, "method_not_allowed", f"{request.method} is not allowed here")
        mcu_id = _authenticate(request)
        body = http.read_body(request, BODY_LIMIT)
        now = runtime.clock().now()
        if uploaded:
            report = http.parse(RecordingUploaded, body)
            if report.recording_id != uploaded.group(1):
                raise errors.InvalidRequest("recording_id must match the path")
            return http.json_response({"outcome": recordings.uploaded(mcu_id, report, runtime.settings(), now)})
        if path == "/heartbeat":
            beat = http.parse(McuHeartbeat, body)
            if beat.id != mcu_id:
                raise errors.InvalidRequest("id must match X-MCU-Id")
            record_heartbeat(mcu_id, beat.model_dump(exclude={"live", "live_at"}))
            if beat.live is not None and beat.live_at is not None:  # lost "left" events: reconcile
                lifecycle.after(reconcile_live(mcu_id, beat.live, beat.live_at, now), runtime.settings())
            return flask.Response(status=204)
        batch = http.parse(McuEvents, body)
        recorded = record_events(list(batch.events), mcu_id, now)
        lifecycle.after(recorded, runtime.settings())
        return http.json_response({"stored": recorded.stored})
    except errors.WebmeetingError as exc:
        return http.from_error(exc)
    except Exception as exc:  # noqa: BLE001 - the edge: log it, never show a stack trace
        return http.internal_error(exc)
