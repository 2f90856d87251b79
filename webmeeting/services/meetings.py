"""Resolving meeting links (key and vanity forms) to the meeting a page should show."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from webmeeting.adapters import firestore as fs
from webmeeting.domain.people import display_name
from webmeeting.errors import NotFound
from webmeeting.links import vanity_link_id

KEY_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


@dataclass(frozen=True)
class MeetingView:
    key: str
    kind: str  # scheduled | quick
    title: str
    organizer_name: str
    pbx_id: str
    meeting: dict[str, Any]


def resolve_key(key: str) -> MeetingView:
    """The meeting behind ``key`` while it, its PBX and its enabled organizer exist."""
    if not KEY_RE.match(key):
        raise NotFound("no such meeting")
    snap = fs.meetings().document(key).get()
    if not snap.exists:
        raise NotFound("no such meeting")
    m = fs.data(snap)
    ext_snap = fs.extensions(m["pbx_id"]).document(m["organizer"]).get()
    if not ext_snap.exists or not ext_snap.get("enabled"):
        raise NotFound("no such meeting")
    ext = fs.data(ext_snap)
    organizer = display_name(ext, ext.get("number", ""))
    title = m.get("name") or f"{organizer}'s meeting"
    return MeetingView(key, m.get("kind", "scheduled"), title, organizer, m["pbx_id"], m)


def resolve_vanity(vanity: str, slug: str) -> MeetingView:
    if len(vanity) > 64 or len(slug) > 64:
        raise NotFound("no such meeting")
    snap = fs.vanity_links().document(vanity_link_id(vanity, slug)).get()
    if not snap.exists:
        raise NotFound("no such meeting")
    return resolve_key(snap.get("meeting_key"))
