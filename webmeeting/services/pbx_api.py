"""The PBX API v1 use cases on Firestore: activation, authentication, sync, meetings, reports.

Every use case validates before it writes, and commits its writes (including the request's
nonce) together, so a rejected request changes nothing.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from webmeeting import crypto
from webmeeting.adapters import firestore as fs
from webmeeting.adapters import geoip
from webmeeting.domain import signing
from webmeeting.domain.api import (
    ActivateRequest,
    ActivateResponse,
    ExtensionResult,
    LicenseInfo,
    MeetingRequest,
    MeetingResponse,
    Report,
    ReportsResponse,
    SyncRequest,
    SyncResponse,
)
from webmeeting.domain.licenses import License, license_problem
from webmeeting.domain.mcu import Location
from webmeeting.domain.people import display_name
from webmeeting.domain.sync import ManifestEntry, normalize_vanity, plan_sync, shard_of
from webmeeting.errors import Conflict, InvalidRequest, IpMismatch, LicenseInvalid, NotFound, Unauthenticated, WriteConflict
from webmeeting.links import meeting_url, organizer_url, slugify, vanity_link_id, vanity_url
from webmeeting.services import files, invitations, pbx_data, polls
from webmeeting.services.licenses import load_license
from webmeeting.services.mcus import closest_mcu, mcu_info, pbx_location
from webmeeting.settings import Settings

log = logging.getLogger("webmeeting.pbx_api")

MAX_SLUG_ATTEMPTS = 20  # vanity slug candidates tried before falling back to a random suffix


# --- activation -------------------------------------------------------------------------------


def activate(req: ActivateRequest, source_ip: str, now: datetime, settings: Settings) -> tuple[ActivateResponse, bool]:
    """Bind the FQDN to the license and issue a fresh API secret. Returns (response, created)."""
    secret = crypto.new_api_secret()
    located = geoip.locate(source_ip, settings.geoip_db or None, Location(*settings.default_location))
    mcu = closest_mcu(located.location)

    def run(tx: fs.Transaction) -> tuple[str, License, bool]:
        lic = load_license(req.license_key, tx)
        problem = license_problem(lic, now)
        if problem or lic is None:
            raise LicenseInvalid(problem or "license unknown")
        fq_ref = fs.fqdns().document(req.pbx_fqdn)
        fq = fq_ref.get(transaction=tx)
        # one message for both: it must not tell a licensee whether an FQDN is another customer's
        if (fq.exists and fq.get("license_key") != req.license_key) or (lic.bound_fqdn and lic.bound_fqdn != req.pbx_fqdn):
            raise Conflict(BINDING_CONFLICT)
        created = not fq.exists
        pbx_id = crypto.new_id() if created else fq.get("pbx_id")
        pbx_ref = fs.pbxs().document(pbx_id)
        data: dict[str, Any] = {
            "pbx_fqdn": req.pbx_fqdn,
            "webmeeting_fqdn": req.webmeeting_fqdn,
            "license_key": req.license_key,
            "pbx_version": req.pbx_version,
            "ip": source_ip,
            "secret_enc": crypto.encrypt_secret(settings.secret_key, pbx_id, secret),
            "location": {"latitude": located.location.latitude, "longitude": located.location.longitude},
            "location_source": located.source,
            "country": located.country,
            "mcu_id": mcu.id if mcu else None,
            "activated_at": now,
            "last_contact_at": now,
            "dns_failing_since": None,  # first failed daily DNS check of a failing streak (retention)
            "dns_meetings_purged": False,
        }
        if created:
            data |= {"created_at": now, "sync_generation": 0, "last_sync_at": None}
            tx.set(pbx_ref, data)
        else:
            tx.update(pbx_ref, data)
        tx.set(fq_ref, {"license_key": req.license_key, "pbx_id": pbx_id, "bound_at": now})
        tx.update(fs.licenses().document(req.license_key), {"bound_fqdn": req.pbx_fqdn, "bound_pbx_id": pbx_id})
        return pbx_id, lic, created

    pbx_id, lic, created = fs.transactional(run)
    resp = ActivateResponse(
        pbx_id=pbx_id,
        api_secret=secret,
        sync_interval_s=settings.sync_interval_s,
        license=LicenseInfo(
            edition=lic.edition, max_participants=lic.max_participants, recording=lic.recording, expires_at=lic.expires_at
        ),
        mcu=mcu_info(mcu),
    )
    return resp, created


# --- authentication ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthContext:
    """An authenticated PBX request. Its nonce is claimed by the use case's own commit."""

    pbx_id: str
    pbx: dict[str, Any]
    nonce_ref: Any
    nonce_data: dict[str, Any]

    def claim(self, writer: Any) -> None:
        writer.create(self.nonce_ref, self.nonce_data)


def authenticate(
    headers: dict[str, str],
    method: str,
    path_with_query: str,
    body: bytes,
    source_ip: str,
    wall_now: datetime,
    settings: Settings,
) -> AuthContext:
    """Check signature, freshness (against real time: the PBX's clock is real), source IP and
    that the nonce is unused. Reads only; the use case's commit claims the nonce."""
    try:
        parsed = signing.parse_headers(headers)
    except signing.SignatureError as exc:
        raise Unauthenticated(str(exc)) from exc
    snap = fs.pbxs().document(parsed.pbx_id).get()
    if not snap.exists:
        raise Unauthenticated("unknown pbx")
    pbx = fs.data(snap)
    secret = crypto.decrypt_secret(settings.secret_key, parsed.pbx_id, pbx["secret_enc"])
    now_s = int(wall_now.timestamp())
    errors = []
    for key in crypto.hmac_keys(secret):
        try:
            signing.check(parsed, key, method, path_with_query, body, now_s, settings.signature_window_s)
            break
        except signing.SignatureError as exc:
            errors.append(str(exc))
    else:
        raise Unauthenticated(errors[0])
    if pbx["ip"] != source_ip:
        raise IpMismatch("request from an IP other than the PBX's registered one")
    nonce_id = f"{parsed.pbx_id}-{hashlib.sha256(parsed.nonce.encode()).hexdigest()[:40]}"
    nonce_ref = fs.nonces().document(nonce_id)
    if nonce_ref.get().exists:
        raise Unauthenticated("nonce already used")
    # kept past both ends of the timestamp window; expire_at drives the Firestore TTL policy
    expire_at = datetime.fromtimestamp(parsed.timestamp, wall_now.tzinfo) + timedelta(seconds=2 * settings.signature_window_s)
    return AuthContext(parsed.pbx_id, pbx, nonce_ref, {"pbx_id": parsed.pbx_id, "expire_at": expire_at})


def _commit(writer: fs.Writer) -> None:
    try:
        writer.commit()
    except WriteConflict as exc:
        raise Unauthenticated("nonce already used") from exc


def _claimed(fn: Any) -> Any:
    """Run a use case's transaction; its nonce created by someone else first is a replay."""
    try:
        return fs.transactional(fn)
    except WriteConflict as exc:
        raise Unauthenticated("nonce already used") from exc


# --- sync -------------------------------------------------------------------------------------


def read_manifest(pbx_id: str) -> dict[str, ManifestEntry]:
    entries: dict[str, ManifestEntry] = {}
    for snap in fs.manifest(pbx_id).stream():
        for number, text in (fs.data(snap).get("entries") or {}).items():
            entries[number] = ManifestEntry.decode(text)
    return entries


def _delete_meeting_writes(writer: fs.Writer, snap: Any) -> None:
    data = fs.data(snap)
    if data.get("vanity_link"):
        writer.delete(fs.vanity_links().document(data["vanity_link"]))
    writer.delete(snap.reference)


def pending_reports_count(pbx_id: str) -> int:
    return fs.count(fs.query(fs.reports(), ("pbx_id", "==", pbx_id), ("status", "==", "pending")))


def sync(ctx: AuthContext, req: SyncRequest, now: datetime, settings: Settings) -> tuple[SyncResponse, fs.Writer]:
    numbers = [e.number for e in req.extensions]
    if len(set(numbers)) != len(numbers):
        raise InvalidRequest("extension numbers must be unique")
    pbx_id = ctx.pbx_id
    generation = int(ctx.pbx.get("sync_generation", 0))
    old = read_manifest(pbx_id)
    plan = plan_sync(req.extensions, old, lambda n: crypto.derived_key(settings.secret_key, f"quick:{pbx_id}:{n}:{generation}"))

    writer = fs.Writer()
    ext_col = fs.extensions(pbx_id)
    for state in plan.new_quick_meetings:
        writer.set(
            fs.meetings().document(state.entry.quick_key or ""),
            {"pbx_id": pbx_id, "kind": "quick", "organizer": state.ext.number, "created_at": now},
        )
    for state in plan.upserts:
        e = state.ext
        writer.set(
            ext_col.document(e.number),
            {
                "number": e.number,
                "first_name": e.first_name,
                "last_name": e.last_name,
                "email": e.email,
                "vanity_name": normalize_vanity(e.vanity_name),
                "enabled": state.entry.enabled,
                "reason": state.entry.reason,
                "quick_meeting_key": state.entry.quick_key,
                "updated_at": now,
            },
        )
    gone_meetings: list[str] = []
    for number in plan.deletions:
        for snap in fs.query(fs.meetings(), ("pbx_id", "==", pbx_id), ("organizer", "==", number)).stream():
            _delete_meeting_writes(writer, snap)
            gone_meetings.append(snap.id)
        for snap in fs.query(fs.reports(), ("pbx_id", "==", pbx_id), ("organizer", "==", number)).stream():
            writer.delete(snap.reference)
        writer.delete(ext_col.document(number))
    # last: the manifest, then the PBX's bookkeeping and the nonce (one batch when small)
    for shard in sorted(plan.changed_shards(old)):
        entries = {n: e.encode() for n, e in plan.manifest.items() if shard_of(n) == shard}
        writer.set(fs.manifest(pbx_id).document(str(shard)), {"entries": entries})
    mcu = closest_mcu(pbx_location(ctx.pbx, settings))
    pbx_update: dict[str, Any] = {"last_sync_at": now, "last_contact_at": now, "mcu_id": mcu.id if mcu else None}
    if plan.changed:
        pbx_update["sync_generation"] = generation + 1
    writer.update(fs.pbxs().document(pbx_id), pbx_update)
    ctx.claim(writer)
    _commit(writer)
    for number in plan.deletions:  # the extension's polls and its meetings' documents go with it
        polls.delete_for_extension(pbx_id, number)
    for meeting_key in gone_meetings:
        files.delete_meeting_pdfs(meeting_key)

    results = [
        ExtensionResult(
            number=s.ext.number,
            enabled=s.entry.enabled,
            quick_meeting_url=meeting_url(settings, s.entry.quick_key) if s.entry.enabled and s.entry.quick_key else None,
            quick_meeting_organizer_url=organizer_url(settings, s.entry.quick_key)
            if s.entry.enabled and s.entry.quick_key
            else None,
            reason=s.entry.reason,  # type: ignore[arg-type]
        )
        for s in plan.results
    ]
    return SyncResponse(extensions=results, mcu=mcu_info(mcu), pending_reports=pending_reports_count(pbx_id)), writer


# --- meetings ---------------------------------------------------------------------------------


def _meeting_query(pbx_id: str, pbx_meeting_id: str) -> Any:
    return fs.query(fs.meetings(), ("pbx_id", "==", pbx_id), ("pbx_meeting_id", "==", pbx_meeting_id), limit=1)


def upsert_meeting(
    ctx: AuthContext, pbx_meeting_id: str, req: MeetingRequest, now: datetime, settings: Settings
) -> tuple[MeetingResponse, bool]:
    pbx_id = ctx.pbx_id

    def run(tx: fs.Transaction) -> tuple[str, str | None, str | None, bool, list[str]]:
        existing = list(_meeting_query(pbx_id, pbx_meeting_id).get(transaction=tx))
        ext = fs.extensions(pbx_id).document(req.organizer).get(transaction=tx)
        if not ext.exists or not ext.get("enabled"):
            raise InvalidRequest(f"organizer {req.organizer} is not an extension enabled for WebMeeting")
        vanity = ext.get("vanity_name")
        old = fs.data(existing[0]) if existing else None
        key = existing[0].id if existing else crypto.new_meeting_key()
        writer = fs.Writer()
        slug = old.get("vanity_slug") if old and old.get("organizer") == req.organizer else None
        link_id = old.get("vanity_link") if old and slug else None
        if old and old.get("vanity_link") and not slug:
            writer.delete(fs.vanity_links().document(old["vanity_link"]))
        if vanity and not slug:
            base = slugify(req.name)
            candidates = [base] + [f"{base}-{i}" for i in range(2, MAX_SLUG_ATTEMPTS + 1)]
            for cand in candidates + [f"{base}-{crypto.new_id()[:8]}"]:
                cid = vanity_link_id(vanity, cand)
                if not fs.vanity_links().document(cid).get(transaction=tx).exists:
                    slug, link_id = cand, cid
                    break
            writer.set(fs.vanity_links().document(link_id or ""), {"meeting_key": key, "pbx_id": pbx_id})
        if not vanity:
            slug = link_id = None
        data = {
            "pbx_id": pbx_id,
            "pbx_meeting_id": pbx_meeting_id,
            "kind": "scheduled",
            "organizer": req.organizer,
            "name": req.name,
            "comments": req.comments,
            "scheduled_start": req.scheduled_start,
            "duration_minutes": req.duration_minutes,
            "participants": [p.model_dump() for p in req.participants],
            "invitee_emails": sorted({p.email.lower() for p in req.participants if p.email}),  # data-subject queries
            "send_invitations": req.send_invitations,
            "lobby": req.lobby,
            "ends_at": req.scheduled_start + timedelta(minutes=req.duration_minutes),
            "names_cleared": False,  # retention: name, comments, participants' names 7 days after the date
            "emails_cleared": False,  # retention: participants' emails 7 days after completion
            "vanity_slug": slug,
            "vanity_link": link_id,
            "created_at": old["created_at"] if old else now,
            "updated_at": now,
        }
        writer.set(fs.meetings().document(key), data)
        shown = invitations.snapshot(key, data, display_name(fs.data(ext)), meeting_url(settings, key), now)
        mail_ids = invitations.outbox(writer, key, pbx_id, old, data, shown, now)
        writer.update(fs.pbxs().document(pbx_id), {"last_contact_at": now})
        ctx.claim(writer)
        writer.apply(tx)
        return key, vanity, slug, old is None, mail_ids

    key, vanity, slug, created, mail_ids = _claimed(run)
    invitations.enqueue(settings.project, settings.tasks_url, mail_ids)
    return (
        MeetingResponse(
            meeting_key=key,
            url=meeting_url(settings, key),
            organizer_url=organizer_url(settings, key),
            vanity_url=vanity_url(settings, vanity, slug) if vanity and slug else None,
        ),
        created,
    )


def delete_meeting(ctx: AuthContext, pbx_meeting_id: str, now: datetime, settings: Settings) -> None:
    """Delete the meeting and all that hangs on it; invited participants get a cancellation."""

    def run(tx: fs.Transaction) -> tuple[list[str], str]:
        existing = list(_meeting_query(ctx.pbx_id, pbx_meeting_id).get(transaction=tx))
        if not existing:
            raise NotFound("unknown meeting")
        old = fs.data(existing[0])
        ext = fs.extensions(ctx.pbx_id).document(old["organizer"]).get(transaction=tx)
        writer = fs.Writer()
        _delete_meeting_writes(writer, existing[0])
        shown = invitations.snapshot(existing[0].id, old, display_name(fs.data(ext)), meeting_url(settings, existing[0].id), now)
        mail_ids = invitations.outbox(writer, existing[0].id, ctx.pbx_id, old, None, shown, now)
        writer.update(fs.pbxs().document(ctx.pbx_id), {"last_contact_at": now})
        writer.set(fs.meeting_purges().document(existing[0].id), {"at": now, "pbx_id": ctx.pbx_id})  # the rest: a retried task
        ctx.claim(writer)
        writer.apply(tx)
        return mail_ids, existing[0].id

    mail_ids, deleted_key = _claimed(run)
    invitations.enqueue(settings.project, settings.tasks_url, mail_ids)
    files.delete_meeting_pdfs(deleted_key)
    pbx_data.enqueue_purge(settings, deleted_key)


BINDING_CONFLICT = "this license or this PBX FQDN is bound elsewhere; an admin can unbind it"


# --- reports ----------------------------------------------------------------------------------


def list_reports(ctx: AuthContext, status: str, now: datetime) -> ReportsResponse:
    query = fs.query(fs.reports(), ("pbx_id", "==", ctx.pbx_id), ("status", "==", status))
    reports = [Report.model_validate(fs.data(snap)["report"] | {"id": snap.id}) for snap in query.stream()]
    writer = fs.Writer()
    writer.update(fs.pbxs().document(ctx.pbx_id), {"last_contact_at": now})
    ctx.claim(writer)
    _commit(writer)
    return ReportsResponse(reports=reports)


def ack_report(ctx: AuthContext, report_id: str, now: datetime) -> None:
    def run(tx: fs.Transaction) -> None:
        snap = fs.reports().document(report_id).get(transaction=tx)
        if not snap.exists or snap.get("pbx_id") != ctx.pbx_id:
            raise NotFound("unknown report")
        writer = fs.Writer()
        writer.update(snap.reference, {"status": "acked", "acked_at": now})
        writer.update(fs.pbxs().document(ctx.pbx_id), {"last_contact_at": now})
        ctx.claim(writer)
        writer.apply(tx)

    _claimed(run)
