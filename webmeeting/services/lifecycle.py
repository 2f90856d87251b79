"""What follows a change of a meeting session's state, wherever the change came from (MCU
events, a heartbeat's reconciliation, the dead-MCU sweep): a start fetches the PBX's dial-in
data; an end deletes the session's shared files and schedules the report."""

from __future__ import annotations

from datetime import datetime, timedelta

from webmeeting import runtime
from webmeeting.adapters import firestore as fs
from webmeeting.services import files, invitations, pbx_data, reports, statistics
from webmeeting.services.dialin import enqueue_dialin
from webmeeting.services.sessions import Recorded, close_mcu
from webmeeting.settings import Settings


def after(recorded: Recorded, settings: Settings) -> None:
    for meeting_key, session_id in recorded.started:
        enqueue_dialin(settings.project, settings.tasks_url, meeting_key, session_id)
    for meeting_key, session_id in recorded.ended:  # the counter reached 0
        files.delete_session_files(meeting_key, session_id)
        reports.enqueue_finalize(settings, meeting_key, session_id)


def sweep(settings: Settings, now: datetime) -> dict[str, int]:
    """The scheduler's job, every minute: dead MCUs' connections are closed at their last
    heartbeat; sessions over for longer than the grace without a report get one; each live
    MCU's load is sampled into the statistics; mails whose task was lost are queued again."""
    wall = runtime.clock().wall()
    stale = timedelta(seconds=settings.mcu_stale_s)
    closed = 0
    for snap in fs.mcus().stream():
        d = fs.data(snap)
        last = d.get("last_heartbeat_at")
        if last is not None and wall - last <= stale:
            statistics.record_load(d.get("region", "unknown"), int(d.get("load", 0)), wall)
        elif last is not None:
            recorded = close_mcu(snap.id, last, now)
            closed += recorded.stored
            after(recorded, settings)
    finalized = 0
    grace = timedelta(seconds=settings.session_grace_s)
    query = fs.query(fs.sessions(), ("finalized", "==", False))
    for snap in query.stream():
        d = fs.data(snap)
        if int(d.get("count", 0)) == 0 and d.get("ended_at") and wall - d["ended_at"] > grace:
            finalized += reports.finalize(snap.id, d["session_id"], settings, now) == "made"
    mails = invitations.sweep(settings.project, settings.tasks_url, now)
    purges = pbx_data.lost_purges(now)
    for key in purges:  # a deleted meeting's purge task was lost: queue it again
        pbx_data.enqueue_purge(settings, key)
    return {"closed_connections": closed, "reports": finalized, "mails_requeued": mails, "purges_requeued": len(purges)}
