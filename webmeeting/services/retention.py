"""The retention engine: runs the swept rules of ``domain.retention.RULES``.

Every sweep queries only what is due, with an indexed field (a time, and a flag where data is
cleared rather than deleted), deletes or clears in batches, and is idempotent: a second run finds
nothing, an interrupted run is finished by the next. Storage objects go with their records. The
scheduler's daily job fans out one task per rule (``/tasks/v1/retention/<rule>``); a rule with
more due than one batch re-enqueues itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from webmeeting import runtime
from webmeeting.adapters import firestore as fs
from webmeeting.adapters import tasks
from webmeeting.domain import retention as policy
from webmeeting.services import files, reports, statistics
from webmeeting.services.pbx_data import delete_recording_objects, purge_meetings, purge_pbx
from webmeeting.settings import Settings

log = logging.getLogger("webmeeting.retention")

BATCH = 200


def _due(query: Any) -> list[Any]:
    return list(query.stream())


def sweep_recordings(now: datetime, d: timedelta, settings: Settings, limit: int) -> int:
    snaps = _due(fs.query(fs.recordings(), ("created_at", "<", now - d), limit=limit))
    for snap in snaps:
        delete_recording_objects(fs.data(snap), settings)
        snap.reference.delete()  # after its objects: an interrupted run finds the record again
    return len(snaps)


def sweep_meeting_names(now: datetime, d: timedelta, settings: Settings, limit: int) -> int:
    snaps = _due(fs.query(fs.meetings(), ("names_cleared", "==", False), ("scheduled_start", "<", now - d), limit=limit))
    writer = fs.Writer()
    for snap in snaps:
        m = fs.data(snap)
        people = [{**p, "name": None} for p in m.get("participants", [])]
        writer.update(snap.reference, {"name": "", "comments": "", "participants": people, "names_cleared": True})
        if m.get("vanity_link"):  # the vanity slug is made from the name
            writer.delete(fs.vanity_links().document(m["vanity_link"]))
            writer.update(snap.reference, {"vanity_slug": None, "vanity_link": None})
    writer.commit()
    return len(snaps)


def sweep_participant_emails(now: datetime, d: timedelta, settings: Settings, limit: int) -> int:
    snaps = _due(fs.query(fs.meetings(), ("emails_cleared", "==", False), ("ends_at", "<", now - d), limit=limit))
    writer = fs.Writer()
    for snap in snaps:
        people = [{**p, "email": None} for p in fs.data(snap).get("participants", [])]
        writer.update(snap.reference, {"participants": people, "invitee_emails": [], "emails_cleared": True})
    writer.commit()
    return len(snaps)


def _delete_older(collection: Callable[[], fs.Collection], field: str) -> Callable[[datetime, timedelta, Settings, int], int]:
    def sweep(now: datetime, d: timedelta, settings: Settings, limit: int) -> int:
        snaps = _due(fs.query(collection(), (field, "<", now - d), limit=limit))
        writer = fs.Writer()
        for snap in snaps:
            writer.delete(snap.reference)
        writer.commit()
        return len(snaps)

    return sweep


def sweep_shared_files(now: datetime, d: timedelta, settings: Settings, limit: int) -> int:
    return files.delete_leftovers()


def sweep_reports(stage: int) -> Callable[[datetime, timedelta, Settings, int], int]:
    def sweep(now: datetime, d: timedelta, settings: Settings, limit: int) -> int:
        return reports.sanitize_due(now - d, stage, batch=limit)

    return sweep


def sweep_statistics_anonymize(now: datetime, d: timedelta, settings: Settings, limit: int) -> int:
    return statistics.anonymize_due(now - d, batch=limit)


def sweep_statistics_delete(now: datetime, d: timedelta, settings: Settings, limit: int) -> int:
    return statistics.delete_due(now - d, batch=limit)


def sweep_pbx_no_contact(now: datetime, d: timedelta, settings: Settings, limit: int) -> int:
    snaps = _due(fs.query(fs.pbxs(), ("last_contact_at", "<", now - d), limit=limit))
    for snap in snaps:
        log.info("PBX %s silent since %s: deleting all its data", snap.id, fs.data(snap).get("last_contact_at"))
        purge_pbx(snap.id)
    return len(snaps)


def sweep_pbx_dns_meetings(now: datetime, d: timedelta, settings: Settings, limit: int) -> int:
    snaps = _due(fs.query(fs.pbxs(), ("dns_meetings_purged", "==", False), ("dns_failing_since", "<", now - d), limit=limit))
    for snap in snaps:
        log.info("PBX %s unresolvable since %s: deleting its meetings", snap.id, fs.data(snap).get("dns_failing_since"))
        purge_meetings(snap.id)
        snap.reference.update({"dns_meetings_purged": True})
    return len(snaps)


def sweep_pbx_dns(now: datetime, d: timedelta, settings: Settings, limit: int) -> int:
    snaps = _due(fs.query(fs.pbxs(), ("dns_failing_since", "<", now - d), limit=limit))
    for snap in snaps:
        log.info("PBX %s unresolvable since %s: deleting all its data", snap.id, fs.data(snap).get("dns_failing_since"))
        purge_pbx(snap.id)
    return len(snaps)


SWEEPS: dict[str, Callable[[datetime, timedelta, Settings, int], int]] = {
    "recordings": sweep_recordings,
    "meeting_names": sweep_meeting_names,
    "participant_emails": sweep_participant_emails,
    "participant_events": _delete_older(fs.participant_events, "at"),
    "mails": _delete_older(fs.mails, "created_at"),
    "shared_files": sweep_shared_files,
    "reports_sanitize": sweep_reports(1),
    "reports_sanitize_yearly": sweep_reports(2),
    "statistics_anonymize": sweep_statistics_anonymize,
    "statistics_delete": sweep_statistics_delete,
    "pbx_no_contact": sweep_pbx_no_contact,
    "pbx_dns_meetings": sweep_pbx_dns_meetings,
    "pbx_dns": sweep_pbx_dns,
    "audit_log": _delete_older(fs.audit, "at"),
}


def run_rule(name: str, settings: Settings, now: datetime, limit: int = BATCH) -> dict[str, Any]:
    """One batch of one rule; ``more`` when the batch was full (the caller runs it again)."""
    rule = policy.BY_NAME[name]
    duration = policy.durations(dict(runtime.backends().retention_s)).get(name, timedelta(0))
    done = SWEEPS[name](now, duration, settings, limit)
    if done:
        log.info("retention %s: %d items (%s)", name, done, rule.data)
    return {"rule": name, "done": done, "more": done >= limit}


def fan_out(settings: Settings, target: str) -> list[str]:
    """The daily job: one task per swept rule."""
    names = [r.name for r in policy.RULES if r.swept]
    for name in names:
        tasks.enqueue(settings.project, "pbx", f"{target}/tasks/v1/retention/{name}", {})
    return names
