"""Cloud Function ``mcu_api``: the MCUs' calls to the portal.

POST /api/mcu/v1/heartbeat  {id, region, url, capacity, load, latitude, longitude, workers}
POST /api/mcu/v1/events     {events: [{id, type, meeting_key, participant_id, at, ...}]}
POST /api/mcu/v1/recordings/<id>/uploaded  {recording_id, meeting_key, started_at, stopped_at, tracks}

Every call proves which MCU it is (``webmeeting.adapters.mcu_identity``: production, a
Google-signed ID token naming the instance; locally, the MCU's own secret) and speaks only for
that MCU: a heartbeat for its own id, its configured URL and region, at its configured location
and within its configured capacity; uploads only under its own object prefix.
"""

from __future__ import annotations

import re

import flask
import functions_framework

from webmeeting import errors, http, runtime
from webmeeting.adapters import mcu_identity
from webmeeting.domain.api import McuEvents, McuHeartbeat, RecordingUploaded
from webmeeting.domain.mcu import RegisteredMcu
from webmeeting.services import lifecycle, recordings
from webmeeting.services.mcus import live_digest, mark_events, record_heartbeat
from webmeeting.services.sessions import reconcile_live, record_events

PREFIX = "/api/mcu/v1"
BODY_LIMIT = 512 * 1024


def _authenticate(request: flask.Request) -> tuple[str, RegisteredMcu]:
    s = runtime.settings()
    mcu_id = request.headers.get("X-MCU-Id", "")
    authorization = request.headers.get("Authorization", "")
    entry = mcu_identity.authenticate(mcu_id, authorization, s.public_base_url + PREFIX, s.project)
    return mcu_id, entry


def _heartbeat_fields(beat: McuHeartbeat, entry: RegisteredMcu) -> dict[str, object]:
    """What the heartbeat may say: its URL and region are the configured ones; location and the
    capacity ceiling come from the configuration, never from the MCU."""
    if beat.url != entry.url or beat.region != entry.region:
        raise errors.Forbidden("an MCU speaks only for its own configured URL and region")
    return {
        "region": entry.region,
        "url": entry.url,
        "capacity": min(beat.capacity, entry.capacity),
        "load": beat.load,
        "latitude": entry.latitude,
        "longitude": entry.longitude,
        "workers": beat.workers,
    }


def _uploaded(request: flask.Request, m: re.Match[str]) -> flask.Response:
    mcu_id, _entry = _authenticate(request)
    report = http.parse(RecordingUploaded, http.read_body(request, BODY_LIMIT))
    if report.recording_id != m.group(1):
        raise errors.InvalidRequest("recording_id must match the path")
    prefix = f"raw/{mcu_id}/{report.recording_id}/"
    if any(not t.object.startswith(prefix) or ".." in t.object for t in report.tracks):
        raise errors.Forbidden("an MCU's tracks lie under its own prefix")
    return http.json_response({"outcome": recordings.uploaded(mcu_id, report, runtime.settings(), runtime.clock().now())})


def _heartbeat(request: flask.Request, _: re.Match[str]) -> flask.Response:
    mcu_id, entry = _authenticate(request)
    beat = http.parse(McuHeartbeat, http.read_body(request, BODY_LIMIT))
    if beat.id != mcu_id:
        raise errors.Forbidden("an MCU speaks only for itself")
    digest = live_digest(beat.live) if beat.live is not None and beat.live_at is not None else None
    if record_heartbeat(mcu_id, _heartbeat_fields(beat, entry), digest) and beat.live is not None and beat.live_at is not None:
        # lost "left" events: reconcile (when the snapshot or the sessions may have changed)
        lifecycle.after(reconcile_live(mcu_id, beat.live, beat.live_at, runtime.clock().now()), runtime.settings())
    return flask.Response(status=204)


def _events(request: flask.Request, _: re.Match[str]) -> flask.Response:
    mcu_id, _entry = _authenticate(request)
    batch = http.parse(McuEvents, http.read_body(request, BODY_LIMIT))
    recorded = record_events(list(batch.events), mcu_id, runtime.clock().now())
    if recorded.stored:
        mark_events(mcu_id)
    lifecycle.after(recorded, runtime.settings())
    return http.json_response({"stored": recorded.stored})


ROUTES = http.Router(
    PREFIX,
    [
        http.route("/heartbeat", {"POST"}, _heartbeat),
        http.route("/events", {"POST"}, _events),
        http.route("/recordings/([0-9a-f]{32})/uploaded", {"POST"}, _uploaded),
    ],
)


@functions_framework.http
def mcu_api(request: flask.Request) -> flask.Response:
    return ROUTES(request)
